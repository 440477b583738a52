"""The layer panel: a Qt item model over the Document's LayerStack and its view.

Columns: visibility eye (click: show/hide, Alt-click: solo / restore), thumbnail,
name with the swatch colour (double-click to rename). Row selection is kept in sync
with the document's selection.
"""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import QAbstractTableModel, QItemSelection, QItemSelectionModel, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ..document import Document
from ..qimage import to_qimage
from ..resources import icon

EYE, THUMB, NAME = 0, 1, 2
THUMB_SIZE = 48
EYE_SIZE = 20


class LayerModel(QAbstractTableModel):
    def __init__(self, doc: Document, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.doc = doc
        self._rows = 0
        self._thumbs: dict[tuple, QPixmap] = {}
        # The alphas the cached thumbnails were drawn from (compared by identity: an id()
        # in the key could be reused by the next photo's array, showing old thumbnails).
        self._thumbs_of: object = None
        doc.changed.connect(self.refresh)

    def refresh(self) -> None:
        n = len(self.doc.stack) if self.doc.stack is not None else 0
        if n != self._rows:
            self.beginResetModel()
            self._rows = n
            self.endResetModel()
        elif n:
            self.dataChanged.emit(self.index(0, 0), self.index(n - 1, NAME - 0))
        alphas = None if self.doc.stack is None else self.doc.stack.alphas
        if alphas is not self._thumbs_of or len(self._thumbs) > 256:
            self._thumbs.clear()
            self._thumbs_of = alphas

    def clear_cache(self) -> None:
        self._thumbs.clear()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else self._rows

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 3

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return ("", "", "Layer")[section]
        return None

    def eye_pixmap(self, visible: bool) -> QPixmap:
        """The eye at its own size (a QIcon would be drawn at the view's thumbnail-sized
        icon size and clipped by the narrow column), sharp at the screen's scale."""
        from PySide6.QtGui import QGuiApplication

        screen = QGuiApplication.primaryScreen()
        dpr = screen.devicePixelRatio() if screen is not None else 1.0
        return icon("eye" if visible else "eye-off").pixmap(QSize(EYE_SIZE, EYE_SIZE), dpr)

    def thumbnail(self, row: int) -> QPixmap:
        stack = self.doc.stack
        assert stack is not None
        layer = stack.layer(row)
        if stack.alphas is not self._thumbs_of:
            self._thumbs.clear()
            self._thumbs_of = stack.alphas
        key = (row, layer.recolour, layer.colour)
        pix = self._thumbs.get(key)
        if pix is None:
            img = to_qimage(stack.thumbnail(row, THUMB_SIZE))
            pix = QPixmap(THUMB_SIZE + 8, THUMB_SIZE)
            pix.fill(Qt.GlobalColor.transparent)
            p = QPainter(pix)
            p.fillRect(0, 0, 5, THUMB_SIZE, QColor(*layer.colour))   # the swatch strip
            p.drawImage(8 + (THUMB_SIZE - img.width()) // 2, (THUMB_SIZE - img.height()) // 2, img)
            p.end()
            self._thumbs[key] = pix
        return pix

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        stack = self.doc.stack
        if not index.isValid() or stack is None or index.row() >= len(stack):
            return None
        layer = stack.layer(index.row())
        col = index.column()
        if col == EYE:
            if role == Qt.ItemDataRole.DecorationRole:
                return self.eye_pixmap(layer.visible)
            if role == Qt.ItemDataRole.ToolTipRole:
                return "Show/hide (Alt-click: show only this layer; again to restore)"
            if role == Qt.ItemDataRole.AccessibleTextRole:
                return "visible" if layer.visible else "hidden"
        elif col == THUMB:
            if role == Qt.ItemDataRole.DecorationRole:
                return self.thumbnail(index.row())
            if role == Qt.ItemDataRole.SizeHintRole:
                return QSize(THUMB_SIZE + 12, THUMB_SIZE + 4)
        elif col == NAME:
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
                return layer.name
            if role == Qt.ItemDataRole.ToolTipRole:
                edits = "" if layer.recolour.is_identity else " (recoloured)"
                return f"{layer.name}{edits}: double-click to rename"
            if role == Qt.ItemDataRole.FontRole and not layer.recolour.is_identity:
                from PySide6.QtGui import QFont

                f = QFont()
                f.setItalic(True)
                return f
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        f = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == NAME:
            f |= Qt.ItemFlag.ItemIsEditable
        return f

    def setData(self, index: QModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if index.column() == NAME and role == Qt.ItemDataRole.EditRole:
            return self.doc.rename(index.row(), str(value))
        return False


class LayerView(QTreeView):
    eye_clicked = Signal(int, bool)      # row, alt held

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.setIconSize(QSize(THUMB_SIZE + 8, THUMB_SIZE))
        self.setHeaderHidden(True)
        self.doubleClicked.connect(self._rename_row)

    def setModel(self, model) -> None:  # noqa: N802
        super().setModel(model)
        header = self.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(EYE, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(THUMB, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(EYE, EYE_SIZE + 14)
        header.resizeSection(THUMB, THUMB_SIZE + 16)

    def _rename_row(self, index: QModelIndex) -> None:
        if index.isValid():
            self.edit(self.model().index(index.row(), NAME))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        index = self.indexAt(event.position().toPoint())
        if index.isValid() and index.column() == EYE and event.button() == Qt.MouseButton.LeftButton:
            alt = bool(event.modifiers() & Qt.KeyboardModifier.AltModifier)
            self.eye_clicked.emit(index.row(), alt)
            event.accept()
            return
        super().mousePressEvent(event)


class LayerPanel(QWidget):
    """The layer list with merge and recolour shortcuts under it."""

    merge_requested = Signal()

    def __init__(self, doc: Document, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.doc = doc
        self.model = LayerModel(doc, self)
        self.view = LayerView(self)
        self.view.setModel(self.model)
        self._syncing = False
        self.hint = QLabel("Layers appear here when the segmentation has run.")
        self.hint.setWordWrap(True)
        self.hint.setObjectName("hint")
        self.merge_button = QPushButton(icon("merge"), "Merge")
        self.merge_button.setToolTip("Merge the selected layers (Ctrl+E)")
        self.merge_button.clicked.connect(self.merge_requested)
        self.up_button = QPushButton("▲")
        self.up_button.setToolTip("Move the selected layer up (Ctrl+Up)")
        self.up_button.clicked.connect(lambda: self._move(-1))
        self.down_button = QPushButton("▼")
        self.down_button.setToolTip("Move the selected layer down (Ctrl+Down)")
        self.down_button.clicked.connect(lambda: self._move(1))
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Remove the selected layer; the others share its alpha (Del)")
        self.delete_button.clicked.connect(self._delete)
        buttons = QHBoxLayout()
        buttons.addWidget(self.merge_button)
        buttons.addStretch(1)
        for b in (self.up_button, self.down_button, self.delete_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.hint)
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)

        self.view.eye_clicked.connect(self._eye_clicked)
        self.view.selectionModel().selectionChanged.connect(self._view_selection_changed)
        self.model.modelReset.connect(self._doc_selection_changed)
        doc.selection_changed.connect(self._doc_selection_changed)
        doc.changed.connect(self._update_enabled)
        doc.selection_changed.connect(self._update_enabled)
        self._update_enabled()

    def _eye_clicked(self, row: int, alt: bool) -> None:
        if self.doc.stack is None:
            return
        if alt:
            self.doc.toggle_solo(row)
        else:
            self.doc.set_visible(row, not self.doc.stack.layer(row).visible)

    def _view_selection_changed(self, *_: QItemSelection) -> None:
        if self._syncing:
            return
        rows = sorted({i.row() for i in self.view.selectionModel().selectedRows()})
        self._syncing = True
        try:
            self.doc.set_selection(rows)
        finally:
            self._syncing = False

    def _doc_selection_changed(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            sm = self.view.selectionModel()
            sel = QItemSelection()
            for r in self.doc.selection:
                if r < self.model.rowCount():
                    sel.select(self.model.index(r, 0), self.model.index(r, NAME))
            sm.select(sel, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
            if self.doc.selection:
                self.view.scrollTo(self.model.index(self.doc.selection[0], NAME))
        finally:
            self._syncing = False

    def _update_enabled(self) -> None:
        has = self.doc.has_layers
        self.hint.setVisible(not has)
        self.merge_button.setEnabled(has and len(self.doc.selection) >= 2)
        one = has and len(self.doc.selection) == 1
        self.up_button.setEnabled(one and self.doc.selection[0] > 0)
        self.down_button.setEnabled(one and self.doc.selection[0] < len(self.doc.stack or ()) - 1)
        self.delete_button.setEnabled(one and len(self.doc.stack or ()) > 1)

    def _move(self, step: int) -> None:
        if len(self.doc.selection) == 1:
            k = self.doc.selection[0]
            self.doc.move_layer(k, k + step)

    def _delete(self) -> None:
        if len(self.doc.selection) == 1:
            self.doc.delete_layer(self.doc.selection[0])
