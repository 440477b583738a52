"""What the canvas shows: the layers over the photo, a layer alone, or the photo."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    from .stack import LayerStack

__all__ = ["VIEW_MODES", "checkerboard", "render_view"]


def checkerboard(h: int, w: int, cell: int = 8, light: float = 0.8, dark: float = 0.6) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // cell) + (xx // cell)) % 2 == 0, light, dark).astype(np.float32)
    return np.repeat(board[:, :, None], 3, axis=2)


VIEW_MODES = ("overlay", "layer", "photo", "mask")


def render_view(
    stack: "LayerStack",
    mode: str,
    opacity: float,
    selection: Sequence[int] = (),
    dim_unselected: float = 0.5,
    outline_colour: tuple[float, float, float] = (1.0, 1.0, 1.0),
    hovered: Optional[int] = None,
    hover_colour: tuple[float, float, float] = (1.0, 0.85, 0.2),
) -> np.ndarray:
    """What the canvas shows (H×W×3 in [0,1]).

    overlay: the edited photo with the layers' colours over it; when layers are
    selected, the others are dimmed and the selection is outlined.
    layer: the selected layers (all visible ones if none) alone on a checkerboard.
    photo: the edited photo (hidden layers show the checkerboard).
    mask: the selected layers' alpha as grey (white = 1), the first layer's without a
    selection: a mask as Photoshop's channel view shows it.
    ``hovered``: the layer under the pointer, outlined in ``hover_colour`` (overlay).
    """
    sel = [k for k in selection if 0 <= k < len(stack)]
    if mode == "mask":
        a = stack.alphas[sel or [0]].sum(axis=0, dtype=np.float32)
        return np.repeat(np.clip(a, 0.0, 1.0)[:, :, None], 3, axis=2)
    if mode == "photo":
        return stack.composite()
    if mode == "layer":
        idx = sel or [k for k, l in enumerate(stack.layers) if l.visible]
        return stack.isolated(idx)
    if mode != "overlay":
        raise ValueError(f"unknown view mode {mode!r}; expected one of {VIEW_MODES}")
    emphasis = None
    if sel:
        emphasis = [1.0 if k in sel else dim_unselected for k in range(len(stack))]
    out = stack.overlay(stack.composite(), opacity, emphasis)
    if hovered is not None and 0 <= hovered < len(stack) and hovered not in sel:
        out[stack.outline([hovered])] = hover_colour
    if sel:
        out[stack.outline(sel)] = outline_colour
    return out
