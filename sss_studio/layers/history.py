"""The alphas that an undo history keeps, within a memory budget.

Every edit's before/after snapshot refers to an alpha array; edits that do not change
the alphas (rename, recolour, visibility) share it, so the history holds one array per
re-run or merge. Past ``budget_bytes`` the least recently used arrays (never the one
shown) are written to a temporary folder as raw ``.npy`` and read back, bit for bit,
when an undo needs them; each file goes when no snapshot refers to it any more.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Optional

import numpy as np

from .stack import Layer, StackState

DEFAULT_BUDGET = 512 * 2**20


class _Slot:
    """One alpha array of the history: in memory, or spilled to ``path``."""

    def __init__(self, array: np.ndarray, tick: int):
        self.array: Optional[np.ndarray] = array
        self.path: Optional[Path] = None
        self.nbytes = int(array.nbytes)
        self.used = tick

    def get(self, tick: int) -> np.ndarray:
        self.used = tick
        if self.array is None:
            assert self.path is not None
            a = np.load(self.path, allow_pickle=False)
            a.setflags(write=False)
            self.array = a
        return self.array

    def spill(self, folder: Path, serial: int) -> None:
        if self.path is None:
            self.path = folder / f"alphas_{serial}.npy"
            np.save(self.path, self.array, allow_pickle=False)
            weakref.finalize(self, _remove, self.path)
        self.array = None


def _remove(path: Path) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


@dataclass(frozen=True)
class Snapshot:
    """What an undo command keeps: the layer records and a slot for the alphas."""

    layers: tuple[Layer, ...]
    slot: _Slot


class UndoStore:
    def __init__(self, budget_bytes: int = DEFAULT_BUDGET):
        self.budget_bytes = int(budget_bytes)
        self._slots: "weakref.WeakSet[_Slot]" = weakref.WeakSet()
        self._by_array: "weakref.WeakValueDictionary[int, _Slot]" = weakref.WeakValueDictionary()
        self._tick = count()
        self._serial = count()
        self._folder: Optional[Path] = None

    def keep(self, state: StackState) -> Snapshot:
        """A snapshot of ``state`` (its alphas shared with earlier snapshots of the same array)."""
        slot = self._by_array.get(id(state.alphas))
        if slot is None or slot.array is not state.alphas:
            slot = _Slot(state.alphas, next(self._tick))
            self._slots.add(slot)
            self._by_array[id(state.alphas)] = slot
        return Snapshot(state.layers, slot)

    def state(self, snap: Snapshot) -> StackState:
        """The exact state again (read back from disk if it was spilled)."""
        return StackState(snap.slot.get(next(self._tick)), snap.layers)

    def in_memory_bytes(self, shown: Optional[np.ndarray] = None) -> int:
        """Bytes of history alphas held in memory, not counting ``shown`` (the stack's own)."""
        return sum(s.nbytes for s in list(self._slots) if s.array is not None and s.array is not shown)

    def enforce(self, shown: Optional[np.ndarray]) -> int:
        """Spill least recently used arrays until the budget holds; returns how many."""
        spilled = 0
        slots = sorted((s for s in list(self._slots) if s.array is not None and s.array is not shown),
                       key=lambda s: s.used)
        total = sum(s.nbytes for s in slots)
        for s in slots:
            if total <= self.budget_bytes:
                break
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="sss_studio_undo_"))
                weakref.finalize(self, shutil.rmtree, self._folder, True)
            s.spill(self._folder, next(self._serial))
            total -= s.nbytes
            spilled += 1
        return spilled
