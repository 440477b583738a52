"""Threads sized to the cores a run can really get.

On a busy machine (another program using the cores), two BLAS / numba threads per
parallel region wait for each other at every barrier while the other program holds
one core, and spin while they wait: a 640×480 run took 4.9× its idle time under one
competing process, with more CPU time than wall time, while one thread took 2.1×
(docs/solver.md, "Under load"). So each run counts the cores other programs leave
free when it starts and uses that many threads in every pool.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from typing import Iterator, Optional

SAMPLE_S = 0.05
# The threads of the run in progress in this thread (thread_budget), None outside one.
_budget: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("sss_thread_budget", default=None)
_controller = None   # threadpoolctl's view of the loaded BLAS libraries, found once (a scan costs ms)


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> Optional[tuple[int, int]]:
    """(busy, total) jiffies of the whole machine from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)   # idle + iowait
    return sum(values) - idle, sum(values)


def busy_cores(sample_s: float = SAMPLE_S) -> Optional[float]:
    """How many cores other programs keep busy now: from /proc/stat over ``sample_s``
    (less this process's own CPU time meanwhile), else the 1-minute load average;
    None when neither is available."""
    first = _cpu_times()
    if first is not None:
        own0, t0 = time.process_time(), time.perf_counter()
        time.sleep(sample_s)
        second = _cpu_times()
        own = (time.process_time() - own0) / max(time.perf_counter() - t0, 1e-6)
        if second is not None and second[1] > first[1]:
            ncpu = os.cpu_count() or 1
            # Minus this process's own threads (the studio's window drawing meanwhile).
            return max(0.0, ncpu * (second[0] - first[0]) / (second[1] - first[1]) - own)
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def free_cores(sample_s: float = SAMPLE_S) -> int:
    """The cores other programs leave to this run (at least 1)."""
    cores = usable_cores()
    busy = busy_cores(sample_s)
    if busy is None:
        return cores
    return int(min(cores, max(1, round(cores - busy))))


def blas_threads(n: int):
    """Context manager capping the BLAS pools (numpy's and scipy's OpenBLAS are separate
    copies; both threaded on a busy 2-core machine made dense steps 10–30× slower here).
    A no-op when threadpoolctl is not installed or ``n`` ≤ 0."""
    global _controller
    if n <= 0:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=n, user_api="blas")


@contextlib.contextmanager
def thread_budget(n: int) -> Iterator[int]:
    """Every pool (BLAS, OpenMP, numba in this thread) limited to ``n`` threads inside."""
    n = max(1, int(n))
    token = _budget.set(n)
    limiter = None
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=n)
    except ImportError:  # pragma: no cover
        pass
    previous = None
    try:
        import numba

        previous = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover
        pass
    try:
        yield n
    finally:
        if previous is not None:
            import numba

            numba.set_num_threads(previous)
        if limiter is not None:
            limiter.restore_original_limits()
        _budget.reset(token)


def current_threads() -> int:
    """The thread budget of the run in progress in this thread; all usable cores outside one."""
    n = _budget.get()
    return usable_cores() if n is None else n
