"""The Qt-free layer model: a photo's soft layers and their edits (stack), recolouring,
and what the canvas shows (render). No Qt here, no numerics in the GUI."""

from .recolour import Recolour, apply_recolour, hsv_to_rgb, rgb_to_hsv
from .render import VIEW_MODES, checkerboard, render_view
from .stack import PALETTE, Layer, LayerStack, StackState, default_colour, sums_to_one

__all__ = ["Recolour", "apply_recolour", "hsv_to_rgb", "rgb_to_hsv", "VIEW_MODES", "checkerboard", "render_view",
           "PALETTE", "Layer", "LayerStack", "StackState", "default_colour", "sums_to_one"]
