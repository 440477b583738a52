"""Per-stage times and peak memory of the Segmenter (issue 3's benchmark).

Runs the pipeline on ``resources/samples/astronaut.png`` at 320×320 and 640×480, each
run in its own process (so peak memory is that run's), fast mode by default; the
reference mode is added with ``--modes fast reference`` (minutes at 640×480).
Features: see benchmarks/_common.py. Writes its section of benchmarks/RESULTS.md.

    python benchmarks/bench_pipeline.py
    python benchmarks/bench_pipeline.py --modes fast reference --sizes 320x320
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import _common as C  # noqa: E402  (sets single-threaded BLAS first)
import numpy as np  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"
STAGES = ["features", "superpixels", "matting", "affinities", "eigenvectors", "initial segments",
          "soft segments", "grouping", "refining layers", "upsampling"]


def _run(args) -> dict:
    photo, size, mode = args
    C.limit_threads(1)
    from sss_studio.segmentation.pipeline import Segmenter, SegmenterParams

    img = C.resize(C.sample_photo(photo), *size)
    t0 = time.perf_counter()
    feats, kind = C.photo_features(img, photo)
    t_feat = time.perf_counter() - t0
    p = SegmenterParams.for_mode(mode, working_pixels=max(300_000, size[0] * size[1]))
    seg = Segmenter(p)
    seg.set_image(img, feats.astype(np.float32))
    t0, c0 = time.perf_counter(), time.process_time()
    res = seg.run()
    return {"total": time.perf_counter() - t0, "cpu": time.process_time() - c0, "timings": res.timings, "peak_mb": C.peak_rss_mb(),
            "features_kind": kind, "embedding_s": t_feat}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", default="astronaut")
    ap.add_argument("--sizes", nargs="+", default=["320x320", "640x480"])
    ap.add_argument("--modes", nargs="+", default=["fast"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for mode in a.modes:
        for s in a.sizes:
            size = tuple(int(v) for v in s.split("x"))
            reps = a.repeat if mode == "fast" else 1
            runs = []
            for _ in range(reps):
                with ctx.Pool(1) as pool:
                    runs.append(pool.apply(_run, ((a.photo, size, mode),)))
            med = lambda xs: float(np.median(xs))  # noqa: E731
            r = {"total": med([x["total"] for x in runs]), "cpu": med([x["cpu"] for x in runs]), "peak_mb": max(x["peak_mb"] for x in runs),
                 "timings": {st: med([x["timings"].get(st, 0.0) for x in runs]) for st in STAGES},
                 "kind": runs[0]["features_kind"], "reps": reps}
            print(mode, s, f"{r['total']:.1f} s, {r['peak_mb']:.0f} MB",
                  {k: round(v, 2) for k, v in r["timings"].items()}, flush=True)
            rows.append((mode, size, r))
    if a.no_write:
        return
    lines = [
        "## Pipeline stages (bench_pipeline.py)",
        "",
        f"{datetime.date.today().isoformat()}, {C.machine()}; BLAS single-threaded; shared machine "
        f"(other jobs running). Photo `resources/samples/{a.photo}.png` resized; features: {rows[0][2]['kind']} "
        "(given to the Segmenter, so the embedding model is not in these times). Each mode's schedule with the "
        "photo processed at its own size (the working size raised to fit it: this is the cost of the stages "
        "at that size, not the fast mode as the app runs it, for which see bench_speed). Median of the runs shown.",
        "",
        "| mode | size | runs | total s (CPU s) | peak MB | " + " | ".join(STAGES) + " |",
        "|---|---|---|---|---|" + "---|" * len(STAGES),
    ]
    for mode, size, r in rows:
        lines.append(f"| {mode} | {size[0]}×{size[1]} | {r['reps']} | {r['total']:.1f} ({r['cpu']:.0f}) | {r['peak_mb']:.0f} | "
                     + " | ".join(f"{r['timings'][st]:.2f}" for st in STAGES) + " |")
    C.write_section(RESULTS, "bench_pipeline", "\n".join(lines))
    print("wrote", RESULTS)


if __name__ == "__main__":
    main()
