"""Idle worker threads that sleep instead of spinning: set by the entry points (the
``sss-studio`` command, ``python -m sss_studio``) before numpy loads; importing the
package changes nothing.

OpenBLAS's threads spin for a while after each BLAS call, and so do the OpenMP
threads behind numba's parallel kernels. On a 2-core machine the eigensolver
alternates the two (sparse products in numba, dense blocks in OpenBLAS), and each
pool's spinning threads take the cores the other one needs. With idle threads
asleep, two BLAS threads on the coarse LOBPCG level pay off (docs/solver.md,
"Sleeping idle threads"); while they spin, two threads there were slower than one,
so the solver uses them only when ``idle_threads_sleep()`` says these settings took
effect.

Both variables are read when the libraries load, so ``apply()`` is only useful before
numpy is imported; a user's own values win (setdefault).
"""

from __future__ import annotations

import os
import sys

QUIET = {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "PASSIVE"}
# What the environment held when this module was first imported (a program that
# exported both before its imports counts).
_preset = {k: os.environ.get(k) for k in QUIET}
_applied_in_time = False


def apply() -> bool:
    """Set both variables (unless the user set them) if numpy has not loaded yet.
    Returns whether they were set in time to take effect."""
    global _applied_in_time
    if "numpy" in sys.modules:
        return False
    for k, v in QUIET.items():
        os.environ.setdefault(k, v)
    _applied_in_time = True
    return True


def idle_threads_sleep() -> bool:
    """True when both settings are in force: set by ``apply()`` before numpy loaded, or
    already in the environment when this module was first imported."""
    if all(_preset[k] == v for k, v in QUIET.items()):
        return True
    return _applied_in_time and all(os.environ.get(k) == v for k, v in QUIET.items())
