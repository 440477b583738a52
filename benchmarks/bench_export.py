"""A large photo end to end as the command runs it: segment (fast mode), then the PNG
stack and the PSD, each timed, with the process's peak memory; the photo is a bundled
sample upscaled to ``--megapixels``. Writes the 'bench_export' section of RESULTS.md.

    python benchmarks/bench_export.py [--megapixels 50]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

# The app's threading (every core), not _common's single-thread default.
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, str(os.cpu_count() or 1))

import _common as C  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--megapixels", type=float, default=50.0)
    ap.add_argument("--photo", default="coffee")
    a = ap.parse_args()
    from sss_studio.io.export import write_png_stack, write_psd
    from sss_studio.segmentation.params import SegmenterParams
    from sss_studio.segmentation.sources import FeatureSource

    small = C.sample_photo(a.photo)
    s = (a.megapixels * 1e6 / (small.shape[0] * small.shape[1])) ** 0.5
    w, h = int(small.shape[1] * s), int(small.shape[0] * s)
    image = np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1).astype(np.float32)
    out = Path(tempfile.mkdtemp(prefix="sss_bench_export_"))
    try:
        t0 = time.perf_counter()
        seg = FeatureSource(prefer_gpu=False).prepare(image, SegmenterParams()).segmenter
        result = seg.run()
        t_run = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_png_stack(out / "layers", image, result.alphas, result.layer_names)
        t_png = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_psd(out / "layers.psd", image, result.alphas, result.layer_names)
        t_psd = time.perf_counter() - t0
        size_png = sum(p.stat().st_size for p in (out / "layers").iterdir()) / 1e6
        size_psd = (out / "layers.psd").stat().st_size / 1e6
    finally:
        shutil.rmtree(out, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6   # kB → GB on Linux
    total = t_run + t_png + t_psd
    lines = [
        "## A large photo end to end (bench_export.py)",
        "",
        f"{a.photo} upscaled to {w}×{h} ({w * h / 1e6:.0f} MP), fast mode, bundled model, "
        f"{result.layer_count} layers; one process, the app's threading.",
        "",
        "| stage | seconds | share | output |",
        "|---|---|---|---|",
        f"| segment (load to layers) | {t_run:.1f} | {t_run / total:.0%} | |",
        f"| PNG stack | {t_png:.1f} | {t_png / total:.0%} | {size_png:.0f} MB |",
        f"| PSD | {t_psd:.1f} | {t_psd / total:.0%} | {size_psd:.0f} MB |",
        f"| total | {total:.1f} | | peak memory {peak:.2f} GB |",
    ]
    C.write_section(C.REPO / "benchmarks" / "RESULTS.md", "bench_export", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
