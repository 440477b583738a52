"""Idle worker threads that sleep instead of spinning, set before numpy loads.

OpenBLAS's threads spin for a while after each BLAS call, and so do the OpenMP
threads behind numba's parallel kernels. On a 2-core machine the eigensolver
alternates the two (sparse products in numba, dense blocks in OpenBLAS), and each
pool's spinning threads take the cores the other one needs. With idle threads
asleep, two BLAS threads on the coarse LOBPCG level pay off: level 1 at 640×480
2.0–2.1 s → 1.4–1.5 s, end to end 8.6–9.8 s → 7.3–8.2 s (docs/solver.md). While
they spin, the same threads made level 1 slower (2.7 s), so the solver uses them
only when ``idle_threads_sleep()`` says these settings took effect.

Both variables are read when the libraries load, so this runs from the package's
``__init__``; a user's own values win (setdefault).
"""

from __future__ import annotations

import os
import sys

QUIET = {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "PASSIVE"}
_numpy_was_loaded = "numpy" in sys.modules
_preset = {k: os.environ.get(k) for k in QUIET}
if not _numpy_was_loaded:
    for _k, _v in QUIET.items():
        os.environ.setdefault(_k, _v)


def idle_threads_sleep() -> bool:
    """True when both settings are in force: set by us before numpy loaded, or already in
    the environment from the start (e.g. exported by a benchmark before its imports)."""
    if _numpy_was_loaded:
        return all(_preset[k] == v for k, v in QUIET.items())
    return all(os.environ.get(k) == v for k, v in QUIET.items())
