"""``emit``: Signal.emit with a work-around for a reference-counting bug.

With the PySide6 build used here (6.12.0 on CPython 3.11), every ``signal.emit(...)``
made from Python returns ``True`` without taking a reference to it, so each emit
drops one reference to ``True``. CPython < 3.12 does not make ``True`` immortal: after
a few hundred emits (one per progress report) the interpreter aborts with
"bool_dealloc: deallocating True or False". ``emit`` gives the missing reference back
when (and only when) a probe at import shows the bug.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal


def _refs() -> int:
    return sys.getrefcount(True) + sys.getrefcount(False)


def _probe_emit_drops_bool() -> bool:
    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    n = 16
    before = _refs()
    for _ in range(n):
        probe.ping.emit()
    dropped = before - _refs()
    if dropped == n:
        ctypes.pythonapi.Py_IncRef.argtypes = [ctypes.py_object]
        for _ in range(n):  # repair the probe's own damage
            ctypes.pythonapi.Py_IncRef(True)
        return True
    return False


EMIT_DROPS_BOOL = sys.version_info < (3, 12) and _probe_emit_drops_bool()


def emit(signal: Any, *args: Any) -> Any:
    result = signal.emit(*args)
    if EMIT_DROPS_BOOL and (result is True or result is False):
        ctypes.pythonapi.Py_IncRef(result)
    return result
