"""Batch throughput (issue 20): 40 photos of the development corpus through
`sss-studio segment --json` with --jobs 1, --jobs 2 and a dask.distributed LocalCluster
of 2 worker processes; photos per minute and peak memory per worker (each photo's
record carries its worker's peak RSS). Writes its section of benchmarks/RESULTS.md.

    python benchmarks/bench_batch.py            # 40 photos (bsds500 validation, 481×321)
    python benchmarks/bench_batch.py --limit 10
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common as C  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"
PHOTOS = C.REPO.parent / "shared" / "photos"


def corpus(photos_dir: pathlib.Path, limit: int) -> list[pathlib.Path]:
    rows = list(csv.DictReader(open(photos_dir / "manifest.csv")))
    picked = [photos_dir / r["path"] for r in rows if r["source"] == "bsds500" and "/val_" in r["path"]]
    return picked[:limit]


def run(photos: list[pathlib.Path], extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as inputs:
        for p in photos:   # one folder of links: the command sees a plain folder of photos
            os.symlink(p, pathlib.Path(inputs) / p.name)
        cmd = [sys.executable, "-m", "sss_studio", "segment", inputs, "--out", out, "--json", "--quiet", *extra]
        env = {k: v for k, v in os.environ.items() if k not in C.THREAD_VARS}   # the command's own threads
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
    recs = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    ok = [r for r in recs if r["status"] == "ok"]
    per_worker: dict = {}
    for r in ok:
        per_worker[r.get("worker")] = max(per_worker.get(r.get("worker"), 0), r.get("peak_mb") or 0)
    return {"wall": wall, "ok": len(ok), "failed": len(recs) - len(ok), "per_min": 60 * len(ok) / wall,
            "peak_mb": max(per_worker.values()) if per_worker else float("nan"), "workers": len(per_worker),
            "rc": done.returncode, "stderr": done.stderr[-500:]}


def dask_run(photos: list[pathlib.Path], workers: int) -> dict:
    from dask.distributed import LocalCluster

    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {v: str(threads) for v in C.THREAD_VARS}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      env=env) as cluster:
        return run(photos, ["--dask", cluster.scheduler_address])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos-dir", type=pathlib.Path, default=PHOTOS)
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    if not (a.photos_dir / "manifest.csv").exists():
        raise SystemExit(f"no photo corpus at {a.photos_dir} (--photos-dir)")
    photos = corpus(a.photos_dir, a.limit)
    rows = []
    for label, fn in (("--jobs 1", lambda: run(photos, ["--jobs", "1"])),
                      ("--jobs 2", lambda: run(photos, ["--jobs", "2"])),
                      ("Dask LocalCluster, 2 worker processes", lambda: dask_run(photos, 2))):
        r = fn()
        print(label, {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k != "stderr"},
              flush=True)
        if r["rc"] not in (0, 1):
            print(r["stderr"])
        rows.append((label, r))
    base = rows[0][1]["per_min"]
    body = "\n".join([
        "## Batch throughput (bench_batch.py)",
        "",
        f"{datetime.date.today()}, {C.machine()}. {len(photos)} BSDS500 validation photos (481×321), "
        "`sss-studio segment FOLDER --out … --json`, fast mode, bundled model; wall time of the whole command "
        "(model loading and start-up included). Peak memory: the largest peak RSS of one worker.",
        "",
        "| runner | photos | wall s | photos / min | vs --jobs 1 | peak MB per worker |",
        "|---|---|---|---|---|---|",
        *[f"| {label} | {r['ok']} ok, {r['failed']} failed | {r['wall']:.0f} | {r['per_min']:.1f} | "
          f"{r['per_min'] / base:.2f}× | {r['peak_mb']:.0f} |" for label, r in rows],
    ])
    print(body)
    if not a.no_write:
        C.write_section(RESULTS, "bench_batch", body)


if __name__ == "__main__":
    main()
