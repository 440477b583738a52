"""The canvas: shows an image, zooms about the cursor, pans, reports hover and clicks
in image coordinates. It knows nothing about layers; the main window decides what
image to show and what a click means."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QPoint, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPen, QPixmap, QWheelEvent
from PySide6.QtWidgets import (QFrame, QGraphicsEllipseItem, QGraphicsItem, QGraphicsPixmapItem, QGraphicsScene,
                               QGraphicsView, QWidget)

MIN_ZOOM = 0.02
MAX_ZOOM = 64.0


class Canvas(QGraphicsView):
    hovered = Signal(float, float)                 # image x, y under the cursor
    hover_left = Signal()
    clicked = Signal(float, float, object)         # image x, y, Qt.KeyboardModifiers
    zoom_changed = Signal(float)                   # the view's scale (1 = 100 %)
    # With the brush or seed tool: a left-button drag in image coordinates.
    stroke_started = Signal(float, float, object)  # x, y, Qt.KeyboardModifiers
    stroke_moved = Signal(float, float)
    stroke_ended = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.FastTransformation)
        self._scene.addItem(self._item)
        self.setScene(self._scene)
        self.setBackgroundBrush(QBrush(QColor(45, 45, 48)))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Zoom about the cursor is done by hand (scale, then translate back).
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(False)
        self.viewport().setAcceptDrops(False)
        self._has_image = False
        self._logical_size: Optional[QSize] = None
        self._space = False
        self._pan_from: Optional[QPoint] = None
        self._fit_on_show = True
        self._stroking = False
        self.tool = "select"   # or "brush", "seeds" (set_tool)
        self._markers: list[QGraphicsEllipseItem] = []

    def set_tool(self, tool: str) -> None:
        self.tool = tool
        if tool in ("brush", "seeds"):
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.viewport().unsetCursor()

    # -- image ------------------------------------------------------------------------
    @property
    def has_image(self) -> bool:
        return self._has_image

    def set_image(self, image: Optional[QImage], fit: bool = False, logical_size: Optional[QSize] = None) -> None:
        """Show ``image``; ``logical_size`` is the photo's size in pixels when the image
        is a downscaled preview (scene coordinates stay photo pixels)."""
        if image is None or image.isNull():
            self._item.setPixmap(QPixmap())
            self._has_image = False
            self._logical_size = None
            return
        new_size = logical_size if logical_size is not None else image.size()
        old_size = self._logical_size
        self._item.setPixmap(QPixmap.fromImage(image))
        self._item.setScale(new_size.width() / max(1, image.width()))
        self._logical_size = QSize(new_size)
        self._has_image = True
        if fit or old_size is None or old_size != new_size:
            w, h = new_size.width(), new_size.height()
            m = 4.0 * max(w, h)
            # A scene much larger than the photo lets it be panned anywhere.
            self._scene.setSceneRect(QRectF(-m, -m, w + 2 * m, h + 2 * m))
            self.fit()
            self._fit_on_show = True

    def set_markers(self, markers: list[tuple[float, float, tuple[int, int, int], bool]]) -> None:
        """Dots at image points (x, y, RGB colour, filled): the seeds. They keep their
        size on screen at any zoom; an empty list removes them."""
        for item in self._markers:
            self._scene.removeItem(item)
        self._markers = []
        r = 4.0
        for x, y, colour, filled in markers:
            item = QGraphicsEllipseItem(-r, -r, 2 * r, 2 * r)
            item.setPos(x, y)
            item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
            item.setPen(QPen(QColor(255, 255, 255) if filled else QColor(*colour), 1.5))
            item.setBrush(QBrush(QColor(*colour)) if filled else QBrush(QColor(20, 20, 20)))
            item.setZValue(10)
            self._scene.addItem(item)
            self._markers.append(item)

    @property
    def marker_count(self) -> int:
        return len(self._markers)

    def image_rect(self) -> QRectF:
        return self._item.mapRectToScene(self._item.boundingRect())

    # -- zoom -------------------------------------------------------------------------
    @property
    def zoom(self) -> float:
        return float(self.transform().m11())

    def fit(self) -> None:
        if not self._has_image:
            return
        self.resetTransform()
        self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)
        self.zoom_changed.emit(self.zoom)

    def actual_size(self) -> None:
        centre = self.mapToScene(self.viewport().rect().center())
        self.resetTransform()
        self.centerOn(centre)
        self.zoom_changed.emit(self.zoom)

    def zoom_by(self, factor: float, anchor: Optional[QPointF] = None) -> None:
        """Scale by ``factor`` keeping the scene point under ``anchor`` (viewport
        coordinates; the centre by default) where it is."""
        target = self.zoom * factor
        if target < MIN_ZOOM or target > MAX_ZOOM:
            factor = min(max(target, MIN_ZOOM), MAX_ZOOM) / self.zoom
        if anchor is None:
            anchor = QPointF(self.viewport().rect().center())
        before = self.mapToScene(anchor.toPoint())
        self.scale(factor, factor)
        after = self.mapToScene(anchor.toPoint())
        d = after - before
        self.translate(d.x(), d.y())
        self.zoom_changed.emit(self.zoom)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._fit_on_show:
            self._fit_on_show = False
            self.fit()

    # -- events ---------------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps == 0:
            return
        self.zoom_by(1.25 ** steps, event.position())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().unsetCursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pan = event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and self._space
        )
        if pan:
            self._pan_from = event.position().toPoint()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton and self._has_image:
            p = self.mapToScene(event.position().toPoint())
            if self.tool in ("brush", "seeds"):
                self._stroking = True
                self.stroke_started.emit(p.x(), p.y(), event.modifiers())
            else:
                self.clicked.emit(p.x(), p.y(), event.modifiers())
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._pan_from is not None:
            pos = event.position().toPoint()
            delta = pos - self._pan_from
            self._pan_from = pos
            self.pan_by(delta.x(), delta.y())
            event.accept()
            return
        if self._stroking:
            p = self.mapToScene(event.position().toPoint())
            self.stroke_moved.emit(p.x(), p.y())
        if self._has_image:
            p = self.mapToScene(event.position().toPoint())
            if self.image_rect().contains(p):
                self.hovered.emit(p.x(), p.y())
            else:
                self.hover_left.emit()
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._stroking and event.button() == Qt.MouseButton.LeftButton:
            self._stroking = False
            self.stroke_ended.emit()
            event.accept()
            return
        if self._pan_from is not None and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._pan_from = None
            if self._space:
                self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            else:
                self.viewport().unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def enterEvent(self, event) -> None:  # noqa: N802
        # Space-to-pan needs the keyboard: take focus when the cursor comes over the
        # photo, unless the user is typing somewhere (e.g. renaming a layer).
        from PySide6.QtWidgets import QApplication, QLineEdit

        if not isinstance(QApplication.focusWidget(), QLineEdit):
            self.setFocus(Qt.FocusReason.MouseFocusReason)
        super().enterEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        self.hover_left.emit()
        super().leaveEvent(event)

    def pan_by(self, dx: int, dy: int) -> None:
        """Move the view so the image follows the mouse by (dx, dy) viewport pixels."""
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() - dx)
        v.setValue(v.value() - dy)
