"""Fast vs reference mode, side by side on the same photos and features (issue 6).

For each photo: per-stage times, wall time and peak memory of each mode (each run in
its own process so peak memory is that run's), the time of a re-run after an
affinity-weight change, and the quality of the fast layers against the reference
layers after Hungarian matching (IoU of the hard argmax, mean |Δα|).

Reference runs take minutes at 640×480, so their layers are cached in
``.cache/bench_speed`` (keyed by photo, size and the parameters); ``--fresh`` re-runs.
Writes its section of benchmarks/RESULTS.md.

With ``--contention``: the app's run (bundled model, threads as the app sizes them)
idle and while a competing CPU-bound process (a numpy matrix-product loop on every
core) shares the machine, side by side in one run, and the same with every pool
fixed to all cores (the behaviour before the runs sized their threads); its own
section of RESULTS.md.

    python benchmarks/bench_speed.py                     # 3 photos at 640×480 and 320×240
    python benchmarks/bench_speed.py --photos astronaut --sizes 640x480 --repeat 3
    python benchmarks/bench_speed.py --contention --sizes 640x480 320x240 4000x3000
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import multiprocessing as mp
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import _common as C  # noqa: E402  (sets single-threaded BLAS first)
import numpy as np  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"
CACHE = C.REPO / ".cache" / "bench_speed"
FAST_LOG = CACHE / "fast_runs.jsonl"


def _params(mode: str, size: tuple[int, int]):
    from sss_studio.segmentation.pipeline import SegmenterParams
    if mode == "reference":   # the paper's pipeline on the photo at its own size
        return SegmenterParams.for_mode(mode, working_pixels=max(300_000, size[0] * size[1]))
    # Fast mode as the user gets it: its own working size, then guided upsampling.
    return SegmenterParams.for_mode("fast")


def _preset_key(size: tuple[int, int]) -> str:
    """Identifies the fast preset a logged run used (runs of older presets are not mixed in)."""
    return json.dumps(_params("fast", size).to_dict(), sort_keys=True, default=str)


def _run(args) -> dict:
    """One mode on one photo, in a fresh process: times, peak memory, layers."""
    name, size, mode, weight_change, threads = args
    if threads == 1:
        C.limit_threads(1)
    from dataclasses import replace
    from sss_studio.segmentation.pipeline import Segmenter

    img = C.resize(C.sample_photo(name), *size)
    if mode == "fast-model":   # end to end as the app runs it: the bundled model makes the features
        from sss_studio.segmentation.embedding import EmbeddingModel, default_model_path
        p, kind = _params("fast", size), "bundled model"
        seg = Segmenter(p, embedding_model=EmbeddingModel(default_model_path(), prefer_gpu=False))
        seg.set_image(img)
    else:
        feats, kind = C.photo_features(img, name)
        p = _params(mode, size)
        seg = Segmenter(p)
        seg.set_image(img, feats.astype(np.float32))
    t0, c0 = time.perf_counter(), time.process_time()
    res = seg.run()
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"name": name, "size": size, "mode": mode, "features": kind, "total": total, "cpu": cpu,
           "timings": res.timings, "alphas": res.alphas}
    if weight_change:
        p2 = replace(p, weights=replace(p.weights, semantic=p.weights.semantic * 1.5))
        t0, c0 = time.perf_counter(), time.process_time()
        r2 = seg.run(p2)
        out["rerun"] = time.perf_counter() - t0
        out["rerun_cpu"] = time.process_time() - c0
        out["rerun_timings"] = r2.timings
    out["peak_mb"] = C.peak_rss_mb()
    return out


def run_isolated(name, size, mode, weight_change=False, threads=1) -> dict:
    """``threads`` > 1: the process gets that many threads in every pool (BLAS, numba),
    as the app has on a machine with that many cores; 1: everything single-threaded."""
    ctx = mp.get_context("spawn")
    saved = {v: os.environ.get(v) for v in C.THREAD_VARS}
    os.environ.update({v: str(threads) for v in C.THREAD_VARS})   # the child inherits them at spawn
    try:
        with ctx.Pool(1) as pool:
            return pool.apply(_run, ((name, size, mode, weight_change, threads),))
    finally:
        for v, val in saved.items():
            if val is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = val


def _cache_path(name: str, size: tuple[int, int]) -> pathlib.Path:
    # Keyed by photo and size only: the reference preset does not change (delete the
    # cache, or pass --fresh, after a change to the reference code path).
    return CACHE / f"{name}_{size[0]}x{size[1]}_reference.npz"


def reference_layers(name: str, size: tuple[int, int], fresh: bool) -> dict:
    """Reference-mode result, cached on disk by photo, size and parameters."""
    path = _cache_path(name, size)
    if path.exists() and not fresh:
        z = np.load(path, allow_pickle=True)
        return dict(json.loads(str(z["meta"])), alphas=z["alphas"])
    r = run_isolated(name, size, "reference")
    CACHE.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in r.items() if k != "alphas"}
    np.savez_compressed(path, alphas=r["alphas"].astype(np.float32), meta=json.dumps(meta))
    return r


_COMPETITOR = "import numpy as np\na = np.random.default_rng(0).random((1500, 1500))\nwhile True:\n    a @ a\n"


def _app_run(args) -> dict:
    """The studio's run in a fresh process: bundled model, the app's thread settings
    (``threads`` 0: sized by the run; n: every pool fixed to n), then a slider re-run."""
    name, size, threads = args
    from dataclasses import replace
    from sss_studio.segmentation.embedding import EmbeddingModel, default_model_path
    from sss_studio.segmentation.pipeline import Segmenter

    img = C.resize(C.sample_photo(name), *size)
    p = _params("fast", size)
    seg = Segmenter(p, embedding_model=EmbeddingModel(default_model_path(), prefer_gpu=False), threads=threads)
    seg.set_image(img)
    t0, c0 = time.perf_counter(), time.process_time()
    res = seg.run()
    out = {"total": time.perf_counter() - t0, "cpu": time.process_time() - c0, "threads": res.threads,
           "eigenvectors": res.timings.get("eigenvectors", 0.0)}
    t0 = time.perf_counter()
    seg.run(replace(p, weights=replace(p.weights, semantic=p.weights.semantic * 1.5)))
    out["rerun"] = time.perf_counter() - t0
    return out


def _app_isolated(name, size, threads: int) -> dict:
    """_app_run in a spawned process with the app's environment (all cores, idle threads asleep)."""
    import subprocess

    code = ("import sys, json; sys.path.insert(0, %r); sys.path.insert(0, %r)\n"
            "from sss_studio import _threads_env; _threads_env.apply()\n"
            "import bench_speed as B; print(json.dumps(B._app_run((%r, %r, %d))))"
            % (str(pathlib.Path(__file__).resolve().parent), str(C.REPO), name, tuple(size), threads))
    env = {k: v for k, v in os.environ.items() if k not in C.THREAD_VARS}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def contention_main(names: list[str], sizes: list[tuple[int, int]], repeat: int, write: bool) -> None:
    import subprocess

    cores = os.cpu_count() or 1
    env = {k: v for k, v in os.environ.items() if k not in C.THREAD_VARS}
    rows = []
    for size in sizes:
        for name in names:
            fig: dict[str, list[dict]] = {}
            for _ in range(repeat):
                for label, threads in (("sized", 0), ("all cores", cores)):
                    fig.setdefault(f"{label} idle", []).append(_app_isolated(name, size, threads))
                    rival = subprocess.Popen([sys.executable, "-c", _COMPETITOR], env=env)
                    try:
                        time.sleep(2.0)
                        fig.setdefault(f"{label} busy", []).append(_app_isolated(name, size, threads))
                    finally:
                        rival.kill()
                        rival.wait()
            med = {k: {f: float(np.median([r[f] for r in v])) for f in ("total", "cpu", "rerun", "eigenvectors", "threads")}
                   for k, v in fig.items()}
            print(name, size, json.dumps(med), flush=True)
            rows.append((name, size, med))
    if not write:
        return
    lines = ["## Speed under load: idle vs a competing process (bench_speed.py --contention)", "",
             f"{datetime.date.today().isoformat()}, {C.machine()}. The studio's run (fast mode, bundled model, the "
             f"app's environment), median of {repeat} run(s) each, in fresh processes; busy = while one other "
             "process runs a numpy matrix-product loop on every core (started 2 s before). *Sized*: each run "
             "uses as many threads as the cores other programs leave free when it starts (cpu_budget.py); "
             "*all cores*: every pool fixed to all cores, as before. Re-run: after a semantic-weight change.",
             "", "| photo | size | threads | idle s | busy s | busy / idle | eigenvectors idle → busy s | "
             "CPU s busy | re-run idle → busy s |", "|---|---|---|---|---|---|---|---|---|"]
    for name, size, med in rows:
        for label in ("all cores", "sized"):
            i, b = med[f"{label} idle"], med[f"{label} busy"]
            lines.append(f"| {name} | {size[0]}×{size[1]} | {label} ({i['threads']:.0f} idle, {b['threads']:.0f} busy) | "
                         f"{i['total']:.1f} | {b['total']:.1f} | {b['total'] / i['total']:.2f} | "
                         f"{i['eigenvectors']:.1f} → {b['eigenvectors']:.1f} | {b['cpu']:.1f} | "
                         f"{i['rerun']:.2f} → {b['rerun']:.2f} |")
    C.write_section(RESULTS, "bench_speed_contention", "\n".join(lines))


STAGE_ORDER = ["features", "superpixels", "matting", "affinities", "eigenvectors", "initial segments",
               "soft segments", "grouping", "refining layers", "upsampling"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", nargs="+", default=["astronaut", "coffee", "chelsea"])
    ap.add_argument("--sizes", nargs="+", default=["640x480", "320x240"])
    ap.add_argument("--repeat", type=int, default=3, help="fast-mode runs per photo (median reported)")
    ap.add_argument("--repeat-large", type=int, default=None, help="fast-mode runs above 0.2 MP (default: --repeat)")
    ap.add_argument("--cached-only", action="store_true", help="skip photo/size pairs whose reference is not cached")
    ap.add_argument("--fresh", action="store_true", help="re-run the reference instead of using the cache")
    ap.add_argument("--reference-only", action="store_true", help="fill the reference cache and stop")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-model", action="store_true", help="skip the end-to-end runs with the bundled model")
    ap.add_argument("--from-log", action="store_true", help="tabulate the fast runs logged in .cache/bench_speed/fast_runs.jsonl")
    ap.add_argument("--contention", action="store_true", help="idle vs busy machine (see the module)")
    a = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes]
    if a.contention:
        contention_main(a.photos, sizes, a.repeat, not a.no_write)
        return

    rows, stage_rows = [], []
    for size in sizes:
        for name in a.photos:
            if a.cached_only and not _cache_path(name, size).exists():
                print(f"{name} {size}: no cached reference, skipped", flush=True)
                continue
            ref = reference_layers(name, size, a.fresh)
            print(f"{name} {size}: reference {ref['total']:.1f} s, {ref['peak_mb']:.0f} MB", flush=True)
            if a.reference_only:
                continue
            reps = a.repeat if a.repeat_large is None or size[0] * size[1] <= 200_000 else a.repeat_large
            fast_runs = [] if a.from_log else [run_isolated(name, size, "fast", weight_change=True) for _ in range(reps)]
            for r in fast_runs:  # quality now, then only the figures are kept in the log
                r["iou"], r["dalpha"] = C.match_layers(ref["alphas"], r.pop("alphas"))[:2]
                r["preset"] = _preset_key(size)
                if not a.no_model:
                    m = run_isolated(name, size, "fast-model", weight_change=True)
                    r["model_total"], r["model_cpu"], r["model_rerun"] = m["total"], m["cpu"], m["rerun"]
                    r["model_peak_mb"], r["model_timings"] = m["peak_mb"], m["timings"]
                    # The app as a user runs it: every core of this machine in BLAS and numba.
                    m = run_isolated(name, size, "fast-model", weight_change=True, threads=os.cpu_count() or 1)
                    r["app_total"], r["app_cpu"], r["app_rerun"] = m["total"], m["cpu"], m["rerun"]
                    r["app_peak_mb"], r["app_timings"], r["app_threads"] = m["peak_mb"], m["timings"], os.cpu_count()
                with open(FAST_LOG, "a") as fh:
                    fh.write(json.dumps(r, default=float) + "\n")
            if a.from_log:
                fast_runs = [r for r in map(json.loads, open(FAST_LOG)) if r["name"] == name
                             and tuple(r["size"]) == size and r.get("preset") == _preset_key(size)]
                if not fast_runs:
                    continue
            med = lambda xs: float(np.median(xs))  # noqa: E731
            total = med([r["total"] for r in fast_runs])
            cpu = med([r["cpu"] for r in fast_runs])
            rerun = med([r["rerun"] for r in fast_runs])
            peak = max(r["peak_mb"] for r in fast_runs)
            stages = {s: med([r["timings"].get(s, 0.0) for r in fast_runs]) for s in STAGE_ORDER}
            iou, da = med([r["iou"] for r in fast_runs]), med([r["dalpha"] for r in fast_runs])
            reps = len(fast_runs)
            mruns = [r for r in fast_runs if "model_total" in r]
            model = (med([r["model_total"] for r in mruns]), med([r["model_cpu"] for r in mruns]),
                     med([r["model_rerun"] for r in mruns]), max(r["model_peak_mb"] for r in mruns)) if mruns else None
            aruns = [r for r in fast_runs if "app_total" in r]
            app = (med([r["app_total"] for r in aruns]), med([r["app_cpu"] for r in aruns]),
                   med([r["app_rerun"] for r in aruns]), max(r["app_peak_mb"] for r in aruns)) if aruns else None
            print(f"  fast {total:.1f} s (re-run after weight change {rerun:.1f} s), {peak:.0f} MB, "
                  f"IoU {iou:.3f}, |Δα| {da:.4f}, speed-up {ref['total'] / total:.1f}×", flush=True)
            rows.append((name, size, ref, total, rerun, peak, iou, da, fast_runs[0]["features"], cpu, reps, model, app))
            stage_rows.append((name, size, ref["timings"], stages))

    if a.reference_only or a.no_write or not rows:
        return
    lines = [
        "## Speed: fast vs reference mode (bench_speed.py)",
        "",
        f"{datetime.date.today().isoformat()}, {C.machine()}; load average {os.getloadavg()[0]:.1f} at the end "
        "(above 0 means other jobs shared the machine: compare CPU times). Fast mode "
        f"(working size {_params('fast', (640, 480)).working_pixels / 1e6:.2f} MP, then guided upsampling): median of "
        f"the runs logged (runs column); reference: one run, cached (its CPU time is shown where the "
        "harness recorded it). "
        f"Features: {rows[0][8]} (see benchmarks/_common.py). Quality: fast layers against reference layers, "
        "Hungarian-matched; bar IoU ≥ 0.95, |Δα| ≤ 0.02. End to end: fast mode with the bundled model "
        "making the features (the model's load excluded, its run included), single-threaded like every "
        f"other column; app threading: the same with all {os.cpu_count()} cores in BLAS and numba, as the app "
        "runs (idle BLAS/OpenMP threads sleep, as sss_studio sets up before numpy loads; the eigensolver's "
        "coarse levels then use all cores too).",
        "",
        "| photo | size | reference s (CPU s) | reference peak MB | fast runs | fast s (CPU s) | fast re-run after weight change s | fast peak MB | speed-up (wall) | IoU | mean abs dα | end to end s (CPU s) | its re-run s | its peak MB | end to end, app threading s (CPU s) | its re-run s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, size, ref, total, rerun, peak, iou, da, _, cpu, _reps, model, app in rows:
        rcpu = f"{ref['cpu']:.0f}" if "cpu" in ref else "n/a"
        mcells = (f"{model[0]:.1f} ({model[1]:.1f}) | {model[2]:.1f} | {model[3]:.0f}" if model else "– | – | –")
        acells = f"{app[0]:.1f} ({app[1]:.1f}) | {app[2]:.1f}" if app else "– | –"
        lines.append(f"| {name} | {size[0]}×{size[1]} | {ref['total']:.1f} ({rcpu}) | {ref['peak_mb']:.0f} | {_reps} | {total:.1f} ({cpu:.1f}) | "
                     f"{rerun:.1f} | {peak:.0f} | {ref['total'] / total:.1f}× | {iou:.3f} | {da:.4f} | {mcells} | {acells} |")
    lines += ["", "Per stage, seconds (reference / fast):", "",
              "| photo | size | " + " | ".join(STAGE_ORDER) + " |",
              "|---|---|" + "---|" * len(STAGE_ORDER)]
    for name, size, rt, ft in stage_rows:
        cells = [f"{rt.get(s, 0.0):.2f} / {ft[s]:.2f}" for s in STAGE_ORDER]
        lines.append(f"| {name} | {size[0]}×{size[1]} | " + " | ".join(cells) + " |")
    C.write_section(RESULTS, "bench_speed", "\n".join(lines))
    print("wrote", RESULTS)


if __name__ == "__main__":
    main()
