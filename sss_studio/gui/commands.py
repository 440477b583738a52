"""Undo commands. Every edit is a before/after pair of stack snapshots (alphas are
shared, never copied), so undo restores exactly the previous state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

from PySide6.QtGui import QUndoCommand

from ..core.layers import StackState
from ..core.pipeline import SegmenterParams

if TYPE_CHECKING:
    from .document import Document

_MERGEABLE_ID = 1001


class StackEditCommand(QUndoCommand):
    def __init__(
        self,
        doc: "Document",
        text: str,
        before: StackState,
        after: StackState,
        selection_before: Sequence[int],
        selection_after: Sequence[int],
        params_before: Optional[SegmenterParams] = None,
        params_after: Optional[SegmenterParams] = None,
        merge_key: Optional[tuple] = None,
    ):
        super().__init__(text)
        self.doc = doc
        self.before, self.after = before, after
        self.sel_before, self.sel_after = list(selection_before), list(selection_after)
        self.params_before, self.params_after = params_before, params_after
        self.merge_key = merge_key

    def id(self) -> int:  # noqa: A003 (Qt's name)
        return _MERGEABLE_ID if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802
        if not isinstance(other, StackEditCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        self.sel_after = other.sel_after
        return True

    def redo(self) -> None:
        self.doc.apply_state(self.after, self.params_after, self.sel_after)

    def undo(self) -> None:
        self.doc.apply_state(self.before, self.params_before, self.sel_before)
