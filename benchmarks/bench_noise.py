"""How far apart two reference runs are, and where the fast mode falls (issue 6's bar).

The reference pipeline has two seeded k-means steps (the 40 initial segments and the
grouping); a different seed can land in a different set of layers. This script runs
the reference with several seeds on the same photo and features, runs the fast mode
with the same seeds, and reports matched IoU / mean |Δα| (Hungarian, as bench_speed):
reference vs reference over all seed pairs, and fast vs reference over all pairs.
"Equal to the reference" then means "as close to it as it is to itself".
Reference runs are cached in .cache/bench_speed (seed 0 is bench_speed's own run).
Writes its section of benchmarks/RESULTS.md.

    python benchmarks/bench_noise.py --photos astronaut coffee chelsea --sizes 320x240 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import multiprocessing as mp
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import _common as C  # noqa: E402  (sets single-threaded BLAS first)
import bench_speed as B  # noqa: E402
import numpy as np  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"


def _run(args) -> dict:
    name, size, mode, seed = args
    C.limit_threads(1)
    from dataclasses import replace
    from sss_studio.segmentation.pipeline import Segmenter

    img = C.resize(C.sample_photo(name), *size)
    feats, _ = C.photo_features(img, name)
    seg = Segmenter(replace(B._params(mode, size), seed=seed))
    seg.set_image(img, feats.astype(np.float32))
    c0 = time.process_time()
    res = seg.run()
    return dict(alphas=res.alphas, cpu=time.process_time() - c0)


def _isolated(name, size, mode, seed) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run, ((name, size, mode, seed),))


def reference(name: str, size: tuple[int, int], seed: int) -> np.ndarray:
    if seed == 0:
        return B.reference_layers(name, size, False)["alphas"]
    path = B.CACHE / f"{name}_{size[0]}x{size[1]}_reference_seed{seed}.npz"
    if not path.exists():
        r = _isolated(name, size, "reference", seed)
        B.CACHE.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, alphas=r["alphas"].astype(np.float32), meta=json.dumps({"cpu": r["cpu"]}))
        print(f"  reference seed {seed}: {r['cpu']:.0f} s CPU", flush=True)
    return np.load(path)["alphas"]


def _stats(pairs: list[tuple[float, float]]) -> str:
    iou = np.array([p[0] for p in pairs])
    da = np.array([p[1] for p in pairs])
    return f"{iou.mean():.3f} ({iou.min():.3f}–{iou.max():.3f}) | {da.mean():.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", nargs="+", default=["astronaut", "coffee", "chelsea"])
    ap.add_argument("--sizes", nargs="+", default=["320x240"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    rows = []
    for s in a.sizes:
        size = tuple(int(v) for v in s.split("x"))
        for name in a.photos:
            print(f"{name} {size}", flush=True)
            refs = {sd: reference(name, size, sd) for sd in a.seeds}
            fast = {sd: _isolated(name, size, "fast", sd)["alphas"] for sd in a.seeds}
            rr = [C.match_layers(refs[i], refs[j])[:2] for i, j in itertools.combinations(a.seeds, 2)]
            fr = [C.match_layers(refs[i], fast[j])[:2] for i in a.seeds for j in a.seeds]
            ff = [C.match_layers(fast[i], fast[j])[:2] for i, j in itertools.combinations(a.seeds, 2)]
            print(f"  reference vs reference {_stats(rr)}; fast vs reference {_stats(fr)}; "
                  f"fast vs fast {_stats(ff)}", flush=True)
            rows.append((name, size, rr, fr, ff))
    if a.no_write or not rows:
        return
    lines = [
        "## Run-to-run spread of the reference, and the fast mode within it (bench_noise.py)",
        "",
        f"{datetime.date.today().isoformat()}, {C.machine()}; load average {os.getloadavg()[0]:.1f} at the end. "
        f"Seeds {', '.join(map(str, a.seeds))} (the seed of both k-means steps); same photo and teacher features "
        "for every run. Matched IoU of the hard argmax, mean (min–max) over the pairs, and mean |Δα|: reference "
        "vs reference over all seed pairs, fast vs reference over all (reference seed, fast seed) pairs.",
        "",
        "| photo | size | reference vs reference IoU | abs dα | fast vs reference IoU | abs dα | fast vs fast IoU | abs dα |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, size, rr, fr, ff in rows:
        lines.append(f"| {name} | {size[0]}×{size[1]} | {_stats(rr)} | {_stats(fr)} | {_stats(ff)} |")
    C.write_section(RESULTS, "bench_noise", "\n".join(lines))
    print("wrote", RESULTS)


if __name__ == "__main__":
    main()
