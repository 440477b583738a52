"""The hand-written numba kernels against the library calls that do the same, in one run
(ratios: the machine is shared): the CSR × block product (eigen/_kernels.spmm vs
scipy's ``A @ X``) on the fast mode's real Laplacian, and the k-means assignment
(kmeans._nearest vs ``scipy.cluster.vq.vq``). Writes the 'bench_kernels' section of
RESULTS.md.

    python benchmarks/bench_kernels.py [--photo astronaut] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import time

# Both pools may use every core here (the rows set 1 or 2 per measurement), before
# _common's single-thread default.
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, str(min(2, os.cpu_count() or 1)))

import _common as C  # noqa: E402
import numpy as np  # noqa: E402


def _best(fn, repeat: int) -> float:
    fn()  # warm (numba compiles or loads its cache)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", default="astronaut")
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    from scipy.cluster.vq import vq

    from sss_studio.segmentation import kmeans as K
    from sss_studio.segmentation.affinity import build_laplacian
    from sss_studio.segmentation.cpu_budget import blas_threads
    from sss_studio.segmentation.eigen._kernels import spmm
    from sss_studio.segmentation.features import preprocess_features
    from sss_studio.segmentation.params import SegmenterParams
    from sss_studio.segmentation.pipeline import working_shape
    from sss_studio.segmentation.superpixels import compute_superpixels

    p = SegmenterParams()
    img = C.resize(C.sample_photo(a.photo), 640, 480)
    h, w = working_shape(480, 640, p.working_pixels)
    small = C.resize(img, w, h)
    raw, kind = C.photo_features(small, f"{a.photo}_kernels")
    feats = preprocess_features(small, raw.astype(np.float32), p.features)
    spx = compute_superpixels(small, feats, p.superpixels)
    L = build_laplacian(small, spx, p.weights)
    rng = np.random.default_rng(0)
    rows = []
    for threads in (1, 2):
        with C.limit_threads(threads) or blas_threads(threads):
            import numba

            numba.set_num_threads(threads)
            for dtype in ("float32", "float64"):
                X = rng.standard_normal((L.shape[0], 110)).astype(dtype)
                Ld = L.astype(dtype)
                t_nb = _best(lambda X=X: spmm(L, X), a.repeat)
                t_sp = _best(lambda X=X, Ld=Ld: Ld @ X, a.repeat)
                err = float(np.abs(spmm(L, X) - Ld @ X).max() / np.abs(Ld @ X).max())
                rows.append(("CSR × N×110 block", f"{dtype}, {threads} thread(s)", t_nb, t_sp, err))
            pts = feats.reshape(-1, 3).astype(np.float64)
            centres = pts[rng.choice(len(pts), 40, replace=False)]
            t_nb = _best(lambda p=pts, c=centres: K._nearest(p, c), a.repeat)
            t_sp = _best(lambda p=pts, c=centres: vq(p, c), a.repeat)
            same = bool(np.array_equal(K._nearest(pts, centres)[0], vq(pts, centres)[0]))
            rows.append(("k-means assignment, 40 centres", f"{threads} thread(s)", t_nb, t_sp, 0.0 if same else 1.0))
    lines = [
        "## Hand-written kernels vs library calls (bench_kernels.py)",
        "",
        f"{a.photo} at the fast mode's working size {w}×{h} ({L.shape[0]} pixels, {L.nnz} nonzeros in L, "
        f"features: {kind}); median of {a.repeat} after a warm-up; one run, ratios side by side.",
        "",
        "| operation | setting | numba kernel (ms) | library (ms) | library / numba | difference |",
        "|---|---|---|---|---|---|",
    ]
    for op, setting, t_nb, t_sp, err in rows:
        diff = f"{err:.1e} (relative)" if op.startswith("CSR") else ("same labels" if err == 0 else "labels differ")
        lines.append(f"| {op} | {setting} | {t_nb * 1e3:.1f} | {t_sp * 1e3:.1f} | {t_sp / t_nb:.2f}× | {diff} |")
    C.write_section(C.REPO / "benchmarks" / "RESULTS.md", "bench_kernels", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
