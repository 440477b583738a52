"""Work-around for reference-counting bugs of the PySide6 build in use, and ``emit``.

PySide6 6.12's stable-ABI (abi3) wheels return ``None``, ``True`` and ``False``
without taking a reference (fine on CPython ≥ 3.12, where those objects are
immortal). On CPython 3.11 every call of a void Qt method (``setText``, ``setValue``,
…) and every ``signal.emit(...)`` made from Python drops one reference, and after
some tens of thousands of calls the interpreter aborts with "none_dealloc:
deallocating None" (or "bool_dealloc").

Those three objects are never freed anyway, so when a probe at import shows the
leak, their reference counts get a reserve far larger than any session can use
(2⁴⁰ calls). Importing ``sss_studio.gui`` applies it.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal

_RESERVE = 1 << 40


def _probe(obj: Any, call) -> bool:
    n = 32
    before = sys.getrefcount(obj)
    for _ in range(n):
        call()
    return before - sys.getrefcount(obj) >= n


def _add_references(obj: Any, count: int) -> None:
    # ob_refcnt is the first field of every object in CPython < 3.12.
    ctypes.c_ssize_t.from_address(id(obj)).value += count


def apply_refcount_reserve() -> bool:
    """Give None/True/False a reserve of references if this PySide6 leaks them.
    Returns True when the reserve was applied."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    leaks_none = _probe(None, lambda: probe.setObjectName("p"))
    leaks_bool = _probe(True, lambda: probe.ping.emit())
    if not (leaks_none or leaks_bool):
        return False
    for obj in (None, True, False):
        _add_references(obj, _RESERVE)
    return True


REFCOUNT_RESERVE_APPLIED = apply_refcount_reserve()


def emit(signal: Any, *args: Any) -> Any:
    """``signal.emit(*args)``; kept as one place to adapt emission should the bindings need it."""
    return signal.emit(*args)
