"""Cooperative cancellation shared by every long stage."""

from __future__ import annotations

from typing import Callable, Optional

CancelFn = Optional[Callable[[], bool]]
ProgressFn = Optional[Callable[[str, float], None]]


class Cancelled(Exception):
    """Raised inside a stage when the caller asked to stop; nothing is half-written."""


def check(cancel: CancelFn) -> None:
    """Raise :class:`Cancelled` if ``cancel`` says so."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled")


def report(progress: ProgressFn, stage: str, fraction: float) -> None:
    if progress is not None:
        progress(stage, float(min(max(fraction, 0.0), 1.0)))
