"""Move the training corpus to a GPU machine that cannot see ../shared.

The teacher cache is 3.6 GB; what it is made from is small: the cached-size
photos (JPEG, quality 85), the human segment maps, the projection bases and the
two teacher ONNX files (xz). ``pack`` writes those into one folder (~45 MiB, training split only);
``unpack`` on the other machine rebuilds the same cache by running the
teachers again, in parallel processes. The photos are research-use data: the
pack lives in a git-ignored folder and is never committed.

    python models/corpus_pack.py pack .devdata          # here
    python models/corpus_pack.py unpack .devdata -j 8   # there
"""

from __future__ import annotations

import argparse
import json
import lzma
import multiprocessing as mp
import pathlib
import shutil
import time

import cv2
import numpy as np

import teacher_cache as tc

JPEG_QUALITY = 85


def pack(dst: pathlib.Path, cache: pathlib.Path = tc.CACHE, teachers: pathlib.Path = tc.TEACHER_DIR) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    index = json.loads((cache / "index.json").read_text())
    # Only what is trained on travels: held-out photos are evaluated here.
    index["entries"] = [e for e in index["entries"] if e["split"] == "train"]
    arrays = {}
    for e in index["entries"]:
        with np.load(cache / f"{e['i']:04d}.npz") as z:
            ok, buf = cv2.imencode(".jpg", z["image"][:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            assert ok
            arrays[f"img_{e['i']}"] = buf.ravel()
            if "seg" in z.files:
                arrays[f"seg_{e['i']}"] = z["seg"]
    np.savez_compressed(dst / "corpus.npz", **arrays)
    (dst / "index.json").write_text(json.dumps(index))
    shutil.copy(cache / "pca.npz", dst / "pca.npz")
    import onnx
    for name in ("ade20k", "pascal"):
        model = onnx.load(str(teachers / f"{name}.onnx"))
        model.ir_version = min(model.ir_version, 9)   # opset 17 needs IR 8; older onnxruntimes stop at 9-13
        (dst / f"{name}.onnx.xz").write_bytes(lzma.compress(model.SerializeToString(), preset=6))
    total = sum(f.stat().st_size for f in dst.iterdir())
    print(f"packed {len(index['entries'])} photos into {dst} ({total / 2**20:.1f} MiB)")


_worker: dict = {}


def _init_worker(threads: int, pca_path: str, teachers: str) -> None:
    tc.TEACHER_DIR = pathlib.Path(teachers)
    _worker["sessions"] = [tc._session("ade20k", threads), tc._session("pascal", threads)]
    pca = np.load(pca_path)
    _worker["bases"] = [pca["ade20k"], pca["pascal"]]


def _run_one(job) -> int:
    i, jpeg, seg, dst = job
    rgb = np.ascontiguousarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[:, :, ::-1])
    tc._save_targets(pathlib.Path(dst), _worker["sessions"], _worker["bases"], rgb, seg)
    return i


def unpack(src: pathlib.Path, cache: pathlib.Path = tc.CACHE, teachers: pathlib.Path = tc.TEACHER_DIR,
           workers: int = 8, threads: int = 2) -> None:
    teachers.mkdir(parents=True, exist_ok=True)
    for name in ("ade20k", "pascal"):
        (teachers / f"{name}.onnx").write_bytes(lzma.decompress((src / f"{name}.onnx.xz").read_bytes()))
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "pca.npz", cache / "pca.npz")
    _init_worker(1, str(cache / "pca.npz"), str(teachers))   # fail here, not in a pool that respawns forever
    index = json.loads((src / "index.json").read_text())
    t0 = time.time()
    with np.load(src / "corpus.npz") as z:
        jobs = [(e["i"], z[f"img_{e['i']}"], z[f"seg_{e['i']}"] if f"seg_{e['i']}" in z.files else None,
                 str(cache / f"{e['i']:04d}.npz"))
                for e in index["entries"] if not (cache / f"{e['i']:04d}.npz").exists()]
    with mp.get_context("spawn").Pool(workers, _init_worker, (threads, str(cache / "pca.npz"), str(teachers))) as pool:
        for n, _ in enumerate(pool.imap_unordered(_run_one, jobs, chunksize=8)):
            if n % 200 == 0:
                print(f"{n}/{len(jobs)} teacher targets, {time.time() - t0:.0f} s", flush=True)
    # index.json last: its presence means the cache is complete.
    shutil.copy(src / "index.json", cache / "index.json")
    print(f"cache rebuilt in {cache}: {len(index['entries'])} photos, {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["pack", "unpack"])
    ap.add_argument("folder", type=pathlib.Path)
    ap.add_argument("--cache", type=pathlib.Path, default=tc.CACHE)
    ap.add_argument("-j", "--workers", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.action == "pack":
        pack(a.folder, a.cache)
    else:
        unpack(a.folder, a.cache, workers=a.workers, threads=a.threads)
