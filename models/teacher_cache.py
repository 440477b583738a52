"""Run the two teachers once over the photo corpus and cache compact targets.

Per photo (resized so its longer side is ``CacheParams.side``, dims multiples
of 4) we store, at stride 4 of that size:
- ``feat``: the teachers' 256-D features, each L2-normalised per pixel
  (as the paper's feature preprocessing does), projected on the top ``pca_dims`` axes of their uncentred
  second moment (so dot products, i.e. the teachers' cosine similarities, are
  kept) and concatenated, divided by sqrt(2) so a pixel's norm is about 1;
- ``logits``: ADE20K-32 and PASCAL-21 logits (53 channels);
- ``seg`` (where ground truth exists): human segment ids, 0 = unlabelled
  (BSDS500 annotators, COCO panoptic segments, CamVid classes).
All float16 in one .npz per photo: about 2 MB each instead of 8 MB raw.

The split is fixed by ``split_of``: BSDS500 val, the alphamatting photos and a
seeded 5 % of the rest are held out and never trained on.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import time
import zlib
from dataclasses import asdict, dataclass

import cv2
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "photos"
CACHE = REPO / ".cache" / "embed_cache"
TEACHER_DIR = REPO / ".cache" / "teachers"
MAX_SEGS = 5   # BSDS annotators kept per photo


@dataclass(frozen=True)
class CacheParams:
    side: int = 384          # longer side of the cached photo
    pca_dims: int = 48       # per teacher
    pca_photos: int = 64     # training photos used to fit the projection
    holdout_fraction: float = 0.05
    seed: int = 0


def split_of(path: str, source: str, fraction: float) -> str:
    """Deterministic split from the path alone (stable as the manifest grows)."""
    if source == "bsds500" and "/val_" in path:
        return "val"
    if source == "alphamatting_com":
        return "val"
    h = zlib.crc32(path.encode()) / 2**32
    return "val" if h < fraction else "train"


def read_manifest(photos: pathlib.Path = PHOTOS) -> list[dict]:
    return list(csv.DictReader(open(photos / "manifest.csv")))


def _session(name: str, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(TEACHER_DIR / f"{name}.onnx"), so, providers=["CPUExecutionProvider"])


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """n_out×n_in bilinear (half-pixel centres, edge-clamped) resampling matrix."""
    x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] += 1 - (x - lo)
    m[np.arange(n_out), hi] += x - lo
    return m


def _resize_map(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """Bilinear resize of an h×w×C map with any C (OpenCV 5 caps channels)."""
    ry, rx = _interp_matrix(a.shape[0], h), _interp_matrix(a.shape[1], w)
    return np.einsum("yi,ijc,xj->yxc", ry, a.astype(np.float32), rx, optimize=True)


def teacher_maps(sessions, rgb: np.ndarray, gw: int, gh: int):
    """Both teachers on an RGB uint8 photo → per-teacher normalised 256-D features
    and logits, resized to the gh×gw grid."""
    x = rgb.astype(np.float32).transpose(2, 0, 1)[None]
    feats, logits = [], []
    for s in sessions:
        f, lg = s.run(["features", "logits"], {"image": x})
        f = f[0].transpose(1, 2, 0)
        f = f / np.maximum(np.linalg.norm(f, axis=2, keepdims=True), 1e-6)
        f = _resize_map(f, gw, gh)
        feats.append(f / np.maximum(np.linalg.norm(f, axis=2, keepdims=True), 1e-6))
        logits.append(_resize_map(lg[0].transpose(1, 2, 0), gw, gh))
    return feats, logits


def _grid_size(w: int, h: int, side: int) -> tuple[int, int]:
    """Stride-4 grid (gw, gh) of a w×h photo scaled to longer side ≤ ``side``."""
    s = min(1.0, side / max(w, h))
    return max(4, int(round(w * s / 4))), max(4, int(round(h * s / 4)))


def _load_photo(path: pathlib.Path, side: int):
    """RGB uint8 at the cached size (teachers run at this size too: the student
    trains at this scale, and it halves the teachers' cost)."""
    bgr = cv2.imread(str(path))
    gw, gh = _grid_size(bgr.shape[1], bgr.shape[0], side)
    rgb = cv2.resize(bgr, (gw * 4, gh * 4), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    return np.ascontiguousarray(rgb), gw, gh


def load_segments(row: dict, photos: pathlib.Path, gw: int, gh: int) -> np.ndarray | None:
    gts = [g for g in row["gt_path"].split(";") if g]
    maps = []
    if row["source"] == "bsds500":
        maps = [cv2.imread(str(photos / g), cv2.IMREAD_UNCHANGED).astype(np.int32) for g in gts[:MAX_SEGS]]
    elif row["source"] == "coco128":
        pan = [g for g in gts if g.endswith("_pan.png")]
        if pan:
            bgr = cv2.imread(str(photos / pan[0]), cv2.IMREAD_COLOR).astype(np.int32)
            maps = [bgr[:, :, 2] + 256 * bgr[:, :, 1] + 65536 * bgr[:, :, 0]]
    elif row["source"] == "camvid" and gts:
        lab = cv2.imread(str(photos / gts[0]), cv2.IMREAD_UNCHANGED).astype(np.int32)
        maps = [np.where(lab == 11, 0, lab + 1)]
    if not maps:
        return None
    out = []
    for m in maps:
        # Relabel to 1..n (0 stays unlabelled) so ids fit uint16.
        uniq, inv = np.unique(m, return_inverse=True)
        lab = inv.reshape(m.shape) + (0 if uniq[0] == 0 else 1)
        out.append(cv2.resize(lab.astype(np.uint16), (gw, gh), interpolation=cv2.INTER_NEAREST))
    return np.stack(out)


def _save_targets(dst: pathlib.Path, sessions, bases, rgb: np.ndarray, seg: np.ndarray | None) -> None:
    """Run the teachers on one cached-size photo and write its .npz (temp file, then rename)."""
    gh, gw = rgb.shape[0] // 4, rgb.shape[1] // 4
    feats, logits = teacher_maps(sessions, rgb, gw, gh)
    feat = np.concatenate([f @ b for f, b in zip(feats, bases)], axis=2) / np.sqrt(2.0)
    data = dict(image=rgb, feat=feat.astype(np.float16),
                logits=np.concatenate(logits, axis=2).astype(np.float16))
    if seg is not None:
        data["seg"] = seg
    tmp = dst.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, dst)


def build(params: CacheParams = CacheParams(), photos: pathlib.Path = PHOTOS,
          out: pathlib.Path = CACHE, threads: int = 1) -> pathlib.Path:
    """Fill the cache (resumable: photos already cached are skipped)."""
    rows = read_manifest(photos)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.json"
    entries = [dict(i=i, path=r["path"], source=r["source"],
                    split=split_of(r["path"], r["source"], params.holdout_fraction))
               for i, r in enumerate(rows)]
    sessions = [_session("ade20k", threads), _session("pascal", threads)]

    pca_path = out / "pca.npz"
    if not pca_path.exists():
        rng = np.random.default_rng(params.seed)
        train = [e for e in entries if e["split"] == "train"]
        pick = rng.choice(len(train), min(params.pca_photos, len(train)), replace=False)
        moments = [np.zeros((256, 256)), np.zeros((256, 256))]
        for k in pick:
            rgb, gw, gh = _load_photo(photos / train[k]["path"], params.side)
            feats, _ = teacher_maps(sessions, rgb, gw, gh)
            for m, f in zip(moments, feats):
                f = f.reshape(-1, 256).astype(np.float64)
                m += f.T @ f
        bases, kept = [], []
        for m in moments:
            vals, vecs = np.linalg.eigh(m)
            order = np.argsort(vals)[::-1]
            bases.append(vecs[:, order[: params.pca_dims]].astype(np.float32))
            kept.append(float(vals[order[: params.pca_dims]].sum() / vals.sum()))
        np.savez(pca_path, ade20k=bases[0], pascal=bases[1], kept=np.array(kept))
        print(f"projection fitted on {len(pick)} photos; energy kept: ade20k {kept[0]:.3f}, pascal {kept[1]:.3f}", flush=True)
    pca = np.load(pca_path)
    bases = [pca["ade20k"], pca["pascal"]]

    t0 = time.time()
    for n, (e, row) in enumerate(zip(entries, rows)):
        dst = out / f"{e['i']:04d}.npz"
        if dst.exists():
            continue
        rgb, gw, gh = _load_photo(photos / e["path"], params.side)
        _save_targets(dst, sessions, bases, rgb, load_segments(row, photos, gw, gh))
        if n % 100 == 0:
            print(f"{n}/{len(entries)} cached, {time.time() - t0:.0f} s", flush=True)
    index_path.write_text(json.dumps(dict(params=asdict(params), entries=entries), indent=1))
    return out


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="cache teacher targets for distillation")
    ap.add_argument("--threads", type=int, default=1)
    build(threads=ap.parse_args().threads)
