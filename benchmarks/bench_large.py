"""A 12-megapixel photo end to end (issue 6): per-stage times, CPU time and peak memory.

Makes a 4000×3000 photo by upscaling ``resources/samples/astronaut.png`` (INTER_CUBIC),
runs the Segmenter in fast mode (``SegmenterParams.for_mode("fast")`` as it is now) with
the bundled embedding model, and times ``guided_upsample`` alone at that size for 5
layers (the full-resolution part of the "upsampling" stage). Each measurement runs in
its own process, so each peak RSS is that run's. ``--before REV`` also times the
``guided_upsample`` of an older commit (read with ``git show``, nothing written) for
comparison. Writes its section of benchmarks/RESULTS.md.

    python benchmarks/bench_large.py
    python benchmarks/bench_large.py --before 40882c1 --repeat 1
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import pathlib
import subprocess
import sys
import time
import types

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import _common as C  # noqa: E402  (sets single-threaded BLAS first)
import numpy as np  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"
SIZE = (4000, 3000)  # width, height: 12 MP


def _photo() -> np.ndarray:
    return C.resize(C.sample_photo("astronaut"), *SIZE)  # INTER_CUBIC when enlarging, clipped to [0, 1]


def _load_avg() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def _run_pipeline(refine=True) -> dict:
    C.limit_threads(1)
    from dataclasses import replace

    from sss_studio.segmentation.embedding import EmbeddingModel, default_model_path
    from sss_studio.segmentation.pipeline import Segmenter, SegmenterParams

    img = _photo()
    t0 = time.perf_counter()
    model = EmbeddingModel(default_model_path())
    t_model = time.perf_counter() - t0
    params = SegmenterParams.for_mode("fast")
    if refine is False:
        params = replace(params, refine=replace(params.refine, enabled=False))
    seg = Segmenter(params, embedding_model=model)
    seg.set_image(img)
    t0, c0 = time.perf_counter(), time.process_time()
    res = seg.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert res.alphas.shape[1:] == img.shape[:2]
    return {"total": wall, "cpu": cpu, "timings": dict(res.timings), "peak_mb": C.peak_rss_mb(), "model_load": t_model,
            "working": res.working_size, "provider": res.provider, "layers": res.layer_count,
            "working_pixels": params.working_pixels}


def _old_module(rev: str) -> types.ModuleType:
    for path in ("sss_studio/segmentation/guided_filter.py", "sss_studio/core/guided_filter.py"):  # before the layout change
        got = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=C.REPO, capture_output=True, text=True)
        if got.returncode == 0:
            break
    src = got.stdout
    mod = types.ModuleType(f"guided_filter_{rev}")
    exec(compile(src, f"{rev}:guided_filter.py", "exec"), mod.__dict__)
    return mod


def _run_upsample(args) -> dict:
    """guided_upsample alone: the 12-MP photo, 5 smooth layers summing to one at the fast
    preset's working size, the box size _finish uses there."""
    rev, repeat = args
    C.limit_threads(1)
    import cv2
    import tracemalloc

    from sss_studio.segmentation.pipeline import SegmenterParams, working_shape

    if rev:
        guided_upsample = _old_module(rev).guided_upsample
    else:
        from sss_studio.segmentation.guided_filter import guided_upsample
    full = _photo()
    W, H = SIZE
    h, w = working_shape(H, W, SegmenterParams.for_mode("fast").working_pixels)
    radius = max(2, int(round(4 * (h * w / 300_000) ** 0.5)))  # as pipeline._finish
    rng = np.random.default_rng(0)
    z = np.dstack([cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), 8) * 20 for _ in range(5)])
    e = np.exp(z - z.max(axis=2, keepdims=True))
    layers = (e / e.sum(axis=2, keepdims=True)).astype(np.float32)
    times, cpus, peak_alloc = [], [], 0.0
    for _ in range(repeat):
        q = None
        tracemalloc.start()
        t0, c0 = time.perf_counter(), time.process_time()
        q = guided_upsample(full, layers, size=2 * radius + 1, eps=1e-4)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        peak_alloc = max(peak_alloc, tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    sum_err = float(np.abs(q.sum(axis=2) - 1.0).max())
    return {"times": times, "cpus": cpus, "peak_mb": C.peak_rss_mb(), "alloc_mb": peak_alloc,
            "out_mb": q.nbytes / 2**20, "working": (h, w), "size": 2 * radius + 1, "sum_err": sum_err}


def _in_child(fn, arg=None) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, (arg,))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=1, help="pipeline runs (median shown)")
    ap.add_argument("--upsample-repeat", type=int, default=3)
    ap.add_argument("--before", metavar="REV", help="also time guided_upsample as it was at this commit")
    ap.add_argument("--no-pipeline", action="store_true", help="only time guided_upsample")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()

    load_start = _load_avg()
    ups = {}
    for label, rev in ([("before", a.before)] if a.before else []) + [("now", None)]:
        u = _in_child(_run_upsample, (rev, a.upsample_repeat))
        ups[label] = u
        print(f"guided_upsample {label}{f' ({rev})' if rev else ''}: {SIZE[0]}×{SIZE[1]}, 5 layers from "
              f"{u['working'][1]}×{u['working'][0]}: median {np.median(u['times']):.2f} s (runs {[round(t, 2) for t in u['times']]}), "
              f"CPU {np.median(u['cpus']):.2f} s, numpy/cv2 allocations peak {u['alloc_mb']:.0f} MB "
              f"(output {u['out_mb']:.0f} MB), process peak RSS {u['peak_mb']:.0f} MB", flush=True)

    runs = []
    if not a.no_pipeline:
        for _ in range(a.repeat):
            r = _in_child(_run_pipeline)
            runs.append(r)
            print(f"pipeline: {r['total']:.1f} s wall, {r['cpu']:.1f} s CPU, peak RSS {r['peak_mb']:.0f} MB, working "
                  f"{r['working'][1]}×{r['working'][0]}, model on {r['provider']}",
                  {k: round(v, 2) for k, v in r["timings"].items()}, flush=True)
    unrefined = None
    if not a.no_pipeline:
        unrefined = _in_child(_run_pipeline, False)
        print(f"pipeline without the edges stage: {unrefined['total']:.1f} s wall, peak RSS "
              f"{unrefined['peak_mb']:.0f} MB", flush=True)
    load_end = _load_avg()
    print("load average (1/5/15 min) before", load_start, "after", load_end)
    if a.no_write:
        return

    lines = [
        "## 12-megapixel photo (bench_large.py)",
        "",
        f"{datetime.date.today().isoformat()}, {C.machine()}; BLAS single-threaded. Shared machine: load average "
        f"(1/5/15 min) {load_start} at the start, {load_end} at the end, so wall times can exceed CPU times. "
        f"Photo: `resources/samples/astronaut.png` upscaled to {SIZE[0]}×{SIZE[1]} (INTER_CUBIC).",
    ]
    if runs:
        r0 = runs[0]
        stages = list(dict.fromkeys(k for r in runs for k in r["timings"]))
        med = lambda xs: float(np.median(xs))  # noqa: E731
        lines += [
            "",
            f"Segmenter, fast mode (working_pixels {r0['working_pixels']:,}: layers computed at "
            f"{r0['working'][1]}×{r0['working'][0]}, {r0['layers']} layers), bundled embedding model on "
            f"{r0['provider']} (loading it: {med([r['model_load'] for r in runs]):.1f} s, not in the total). "
            f"Median of {len(runs)} run(s), each in its own process.",
            "",
            "| total s | CPU s | peak RSS MB | " + " | ".join(stages) + " |",
            "|---|---|---|" + "---|" * len(stages),
            f"| {med([r['total'] for r in runs]):.1f} | {med([r['cpu'] for r in runs]):.1f} | "
            f"{max(r['peak_mb'] for r in runs):.0f} | "
            + " | ".join(f"{med([r['timings'].get(s, 0.0) for r in runs]):.2f}" for s in stages) + " |",
        ]
        if unrefined is not None:
            lines += [
                "",
                f"The edge refinement (the `edges` stage, `segmentation/refine.py`) takes "
                f"{med([r['timings'].get('edges', 0.0) for r in runs]):.1f} s of that. The same run without it, "
                f"in its own process: {unrefined['total']:.1f} s, peak RSS {unrefined['peak_mb']:.0f} MB "
                f"(with it: {max(r['peak_mb'] for r in runs):.0f} MB).",
            ]
    u = ups["now"]
    lines += [
        "",
        f"`guided_upsample` alone: 5 layers from {u['working'][1]}×{u['working'][0]} to {SIZE[0]}×{SIZE[1]} "
        f"(box {u['size']}), median of {len(u['times'])} calls in a fresh process. Allocations: peak of numpy/OpenCV "
        f"arrays during the call (tracemalloc), the {u['out_mb']:.0f} MB result included.",
        "",
        "| version | median s | CPU s | allocations peak MB | process peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for label, v in ups.items():
        name = f"before ({a.before})" if label == "before" else "now (bands of rows)"
        lines.append(f"| {name} | {np.median(v['times']):.2f} | {np.median(v['cpus']):.2f} | {v['alloc_mb']:.0f} | {v['peak_mb']:.0f} |")
    C.write_section(RESULTS, "bench_large", "\n".join(lines))
    print("wrote", RESULTS)


if __name__ == "__main__":
    main()
