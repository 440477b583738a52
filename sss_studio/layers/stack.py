"""LayerStack: the Qt-free edit model of the studio.

A stack holds the photo, K soft alphas (K×H×W float32, summing to one at every
pixel) and per-layer edit state (name, swatch colour, visibility, recolour). Every
numeric operation the editor needs lives here: merging, hit-testing, recolouring
through the soft alpha, compositing for display and export, thumbnails.

Alphas are treated as immutable: an edit builds a new array and never writes into
the old one, so a :class:`StackState` snapshot (used as undo data) just keeps a
reference, and restoring it gives back exactly the previous state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from ..resize import resize
from ..segmentation.layer_names import default_name
from ..segmentation.seeds import Seed, SeedGraph, seeded_layers
from .recolour import Recolour, apply_recolour
from .render import checkerboard

__all__ = ["Layer", "StackState", "LayerStack", "default_colour", "PALETTE", "sums_to_one"]

# Swatch colours (0–255 RGB), distinct on photos; cycled for more layers.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (255, 200, 25),
    (145, 30, 180),
    (70, 240, 240),
    (245, 130, 48),
    (240, 50, 230),
    (210, 245, 60),
    (0, 128, 128),
    (170, 110, 40),
    (128, 128, 255),
)


def default_colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Layer:
    name: str
    colour: tuple[int, int, int]          # swatch / overlay colour, 0–255 RGB
    visible: bool = True
    recolour: Recolour = field(default_factory=Recolour)
    merged: bool = False                  # made by merging layers (a re-run merges its parts again)
    seeds: tuple[Seed, ...] = ()          # clicks and scribbles that corrected it (segmentation.seeds)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "colour": list(self.colour),
            "visible": self.visible,
            "recolour": self.recolour.to_dict(),
            "merged": self.merged,
            "seeds": [s.to_dict() for s in self.seeds],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Layer":
        """A layer record as stored in a project; ValueError/TypeError when it is not one."""
        colour = tuple(int(c) for c in d["colour"])
        if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
            raise ValueError(f"a layer colour is three values 0–255, not {d['colour']!r}")
        return cls(
            name=str(d["name"]),
            colour=colour,  # type: ignore[arg-type]
            visible=bool(d.get("visible", True)),
            recolour=Recolour.from_dict(d.get("recolour", {})),
            merged=bool(d.get("merged", False)),
            seeds=tuple(Seed.from_dict(x) for x in d.get("seeds", [])),
        )


@dataclass(frozen=True)
class StackState:
    """Undo data: the alphas (shared, never written) and the per-layer edit state."""

    alphas: np.ndarray
    layers: tuple[Layer, ...]


class LayerStack:
    """The photo, its soft layers and their edit state.

    Parameters
    ----------
    image : ndarray
        H×W×3 float RGB in [0, 1].
    alphas : ndarray
        K×H×W soft layers summing to one at every pixel (kept read-only).
    layers : sequence of Layer, optional
        Name, swatch colour, visibility and recolour per layer (numbered names and the
        palette's colours by default).

    Examples
    --------
    >>> stack = LayerStack(result.image, result.alphas)        # doctest: +SKIP
    >>> k = stack.hit_test(120, 80)                             # the layer under a click  # doctest: +SKIP
    >>> stack.set_recolour(k, Recolour(hue=40))                 # doctest: +SKIP
    >>> edited = stack.edited_image()                           # doctest: +SKIP
    """

    def __init__(self, image: np.ndarray, alphas: np.ndarray, layers: Optional[Sequence[Layer]] = None):
        image = np.ascontiguousarray(image, np.float32)
        alphas = np.ascontiguousarray(alphas, np.float32)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("the photo must be H×W×3")
        if alphas.ndim != 3 or alphas.shape[1:] != image.shape[:2]:
            raise ValueError(f"alphas are {alphas.shape}, photo is {image.shape[:2]}: sizes must match")
        if layers is None:
            layers = [Layer(default_name(k), default_colour(k)) for k in range(alphas.shape[0])]
        if len(layers) != alphas.shape[0]:
            raise ValueError(f"{len(layers)} layer records for {alphas.shape[0]} alphas")
        image.setflags(write=False)
        alphas.setflags(write=False)
        self.image = image
        self._alphas = alphas
        self._layers: list[Layer] = list(layers)
        self._recoloured: dict[Recolour, np.ndarray] = {}
        # Layer k's own colours (segmentation.layer_colours) for the view of layers alone,
        # keyed by k and its recolour, valid for the alphas object in the first slot.
        self._own: tuple[Optional[np.ndarray], dict] = (None, {})

    # -- basic access -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._layers)

    @property
    def alphas(self) -> np.ndarray:
        return self._alphas

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(self._layers)

    def layer(self, index: int) -> Layer:
        return self._layers[index]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    # -- undo data --------------------------------------------------------------------
    def snapshot(self) -> StackState:
        return StackState(self._alphas, tuple(self._layers))

    def restore(self, state: StackState) -> None:
        if state.alphas.shape[1:] != self.image.shape[:2]:
            raise ValueError("the state belongs to a photo of another size")
        self._alphas = state.alphas
        self._layers = list(state.layers)

    # -- edits ------------------------------------------------------------------------
    def set_layer(self, index: int, layer: Layer) -> None:
        self._layers[index] = layer

    def rename(self, index: int, name: str) -> None:
        self._layers[index] = replace(self._layers[index], name=name)

    def set_visible(self, index: int, visible: bool) -> None:
        self._layers[index] = replace(self._layers[index], visible=bool(visible))

    def set_visibility(self, visible: Sequence[bool]) -> None:
        if len(visible) != len(self._layers):
            raise ValueError("one visibility flag per layer")
        self._layers = [replace(l, visible=bool(v)) for l, v in zip(self._layers, visible)]

    def set_recolour(self, index: int, recolour: Recolour) -> None:
        self._layers[index] = replace(self._layers[index], recolour=recolour)

    def merge(self, indices: Iterable[int]) -> int:
        """Merge the layers into one at the lowest index; returns that index.

        The merged alpha is the sum of the merged alphas, so the stack still sums to
        one. It keeps the first layer's colour and visibility (visible if any was);
        its recolour is kept only when all merged layers had the same one.
        """
        idx = sorted(set(int(i) for i in indices))
        if len(idx) < 2:
            raise ValueError("select at least two layers to merge")
        if idx[0] < 0 or idx[-1] >= len(self._layers):
            raise IndexError("layer index out of range")
        merged_alpha = self._alphas[idx].sum(axis=0, dtype=np.float32)
        parts = [self._layers[i] for i in idx]
        recolours = {p.recolour for p in parts}
        merged = Layer(
            name=" + ".join(p.name for p in parts),
            colour=parts[0].colour,
            visible=any(p.visible for p in parts),
            recolour=parts[0].recolour if len(recolours) == 1 else Recolour(),
            merged=True,
            seeds=tuple(x for p in parts for x in p.seeds),
        )
        keep = [k for k in range(len(self._layers)) if k not in idx[1:]]
        new_alphas = np.empty((len(keep),) + self._alphas.shape[1:], np.float32)
        new_layers: list[Layer] = []
        for j, k in enumerate(keep):
            if k == idx[0]:
                new_alphas[j] = merged_alpha
                new_layers.append(merged)
            else:
                new_alphas[j] = self._alphas[k]
                new_layers.append(self._layers[k])
        new_alphas.setflags(write=False)
        self._alphas = new_alphas
        self._layers = new_layers
        return idx[0]

    def move(self, index: int, to: int) -> int:
        """Move layer ``index`` to position ``to`` (the stacking order of exports); returns ``to``."""
        n = len(self._layers)
        if not (0 <= index < n and 0 <= to < n):
            raise IndexError("layer index out of range")
        order = list(range(n))
        order.insert(to, order.pop(index))
        alphas = np.ascontiguousarray(self._alphas[order])
        alphas.setflags(write=False)
        self._alphas = alphas
        self._layers = [self._layers[k] for k in order]
        return to

    def delete(self, index: int) -> None:
        """Remove layer ``index``; the other layers share its alpha in proportion to their
        own, so each pixel still sums to one (where it held a pixel alone, the largest of
        the others there takes it whole)."""
        n = len(self._layers)
        if n < 2:
            raise ValueError("the last layer cannot be deleted")
        if not 0 <= index < n:
            raise IndexError("layer index out of range")
        keep = [k for k in range(n) if k != index]
        rest = self._alphas[keep].astype(np.float32)
        total = rest.sum(axis=0)
        alone = total <= 1e-6
        if alone.any():   # the deleted layer held the pixel alone: it goes to the largest of the rest
            winner = np.argmax(rest, axis=0)
            rest[:, alone] = (winner[alone][None, :] == np.arange(len(keep))[:, None]).astype(np.float32)
            total = rest.sum(axis=0)
        rest /= total
        rest.setflags(write=False)
        self._alphas = rest
        self._layers = [self._layers[k] for k in keep]

    def seed(self, graph: SeedGraph, index: Optional[int], seeds: Sequence[Seed]) -> int:
        """Add ``seeds`` to layer ``index`` (None: to a new, empty layer) and re-solve the
        layers with every seed of the stack (segmentation.seeds); returns the layer's index."""
        alphas, layers = self._alphas, list(self._layers)
        if index is None:
            alphas = np.concatenate([alphas, np.zeros((1,) + alphas.shape[1:], np.float32)])
            used = {l.colour for l in layers}
            colour = next((c for c in PALETTE if c not in used), default_colour(len(layers)))
            layers.append(Layer(_free_name(layers), colour))
            index = len(layers) - 1
        elif not 0 <= index < len(layers):
            raise IndexError("layer index out of range")
        layers[index] = replace(layers[index], seeds=layers[index].seeds + tuple(seeds))
        self._alphas, self._layers = alphas, layers
        self.reseed(graph)
        return index

    def reseed(self, graph: SeedGraph) -> bool:
        """Apply the layers' seeds again (after a re-run gave new layers); False when none."""
        seeds = all_seeds(self._layers)
        if not seeds:
            return False
        self._alphas = _frozen(seeded_layers(graph, self.image, self._alphas, seeds))
        return True

    # -- queries ----------------------------------------------------------------------
    def hit_test(self, x: float, y: float) -> Optional[int]:
        """The layer with the largest alpha at pixel (x, y), or None outside the photo."""
        h, w = self.shape
        xi, yi = int(np.floor(x)), int(np.floor(y))
        if not (0 <= xi < w and 0 <= yi < h):
            return None
        return int(np.argmax(self._alphas[:, yi, xi]))

    def has_alphas(self, alphas: np.ndarray) -> bool:
        """True when ``alphas`` are exactly this stack's (e.g. a re-run that changed nothing)."""
        return alphas is self._alphas or (alphas.shape == self._alphas.shape and bool(np.array_equal(alphas, self._alphas)))

    def alpha_at(self, index: int, x: float, y: float) -> float:
        return float(self._alphas[index, int(y), int(x)])

    def solo_visibility(self, index: int) -> list[bool]:
        return [k == index for k in range(len(self._layers))]

    def visibility(self) -> list[bool]:
        return [l.visible for l in self._layers]

    # -- pixels -----------------------------------------------------------------------
    def layer_pixels(self, index: int) -> np.ndarray:
        """The photo as seen through layer ``index``'s recolour (H×W×3, before alpha)."""
        rc = self._layers[index].recolour
        if rc.is_identity:
            return self.image
        hit = self._recoloured.get(rc)
        if hit is None:
            if len(self._recoloured) > 16:
                self._recoloured.clear()
            hit = apply_recolour(self.image, rc)
            hit.setflags(write=False)
            self._recoloured[rc] = hit
        return hit

    def layer_images(self) -> np.ndarray:
        """K×H×W×3 per-layer pixels (recolours applied), e.g. for export."""
        return np.stack([self.layer_pixels(k) for k in range(len(self._layers))])

    def edited_image(self) -> np.ndarray:
        """The edited photo: Σ α_k·f_k(photo). Written as photo + Σ α_k (f_k − photo)
        over the recoloured layers, so pixels where those alphas are zero stay exactly
        the photo's."""
        out = self.image.copy()
        for k, layer in enumerate(self._layers):
            if not layer.recolour.is_identity:
                out += self._alphas[k][:, :, None] * (self.layer_pixels(k) - self.image)
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def composite(self, background: Optional[np.ndarray] = None) -> np.ndarray:
        """Edited photo with hidden layers removed, showing ``background`` (a
        checkerboard by default) through them."""
        out = self.edited_image()
        hidden = [k for k, l in enumerate(self._layers) if not l.visible]
        if hidden:
            bg = checkerboard(*self.shape) if background is None else background
            for k in hidden:
                out += self._alphas[k][:, :, None] * (bg - self.layer_pixels(k))
            np.clip(out, 0.0, 1.0, out=out)
        return out

    def own_colours(self, index: int) -> np.ndarray:
        """Layer ``index``'s own colours (recoloured): in its soft pixels the photo's colour
        unmixed from what lies behind it, as the exports write it (H×W×3)."""
        from ..segmentation.layer_colours import layer_colours

        alphas, cache = self._own
        if alphas is not self._alphas:
            cache = {}
            self._own = (self._alphas, cache)
        key = (index, self._layers[index].recolour)
        if key not in cache:
            if len(cache) > 16:   # a recolour slider dragged in this view makes a new key a tick
                cache.clear()
            cache[key] = layer_colours(self.layer_pixels(index), self._alphas[index])
        return cache[key]

    def isolated(self, indices: Iterable[int], background: Optional[np.ndarray] = None) -> np.ndarray:
        """The given layers alone (recoloured, in their own colours) over ``background``
        (checkerboard): what the layer shows in an export, without the old background's
        fringe in its soft pixels."""
        idx = list(indices)
        bg = checkerboard(*self.shape) if background is None else background
        out = np.array(bg, np.float32, copy=True)
        if not idx:
            return out
        for k in idx:
            out += self._alphas[k][:, :, None] * (self.own_colours(k) - bg)
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def overlay(
        self,
        base: np.ndarray,
        opacity: float,
        emphasis: Optional[Sequence[float]] = None,
    ) -> np.ndarray:
        """``base`` with the visible layers' swatch colours laid over it.

        Each pixel blends towards Σ α_k·colour_k with weight opacity·Σ α_k·e_k, where
        e_k is the per-layer emphasis (1 by default; the studio dims unselected layers).
        """
        k = len(self._layers)
        e = np.ones(k, np.float32) if emphasis is None else np.asarray(emphasis, np.float32)
        vis = np.array([l.visible for l in self._layers], np.float32)
        wts = e * vis * np.float32(opacity)
        colours = np.array([l.colour for l in self._layers], np.float32) / 255.0
        active = [i for i in range(k) if wts[i] > 0]
        out = np.array(base, np.float32, copy=True)
        if not active:
            return out
        for i in active:
            a = (self._alphas[i] * wts[i])[:, :, None]
            out += a * (colours[i] - base)
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def outline(self, indices: Iterable[int], width: int = 1) -> np.ndarray:
        """H×W bool: the border of the region where one of ``indices`` has the largest alpha."""
        idx = list(indices)
        if not idx:
            return np.zeros(self.shape, bool)
        labels = np.argmax(self._alphas, axis=0)
        mask = np.isin(labels, idx).astype(np.uint8)
        kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
        return (cv2.dilate(mask, kernel) != mask)  # the ring just outside the region

    def thumbnail(self, index: int, max_side: int = 48) -> np.ndarray:
        """Small preview of one layer: its (recoloured) pixels over a checkerboard."""
        h, w = self.shape
        s = min(1.0, max_side / max(h, w))
        th, tw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        pix = resize(self.layer_pixels(index), th, tw)
        a = resize(self._alphas[index], th, tw)[:, :, None]
        bg = checkerboard(th, tw, cell=max(2, max_side // 8))
        return np.clip(bg + a * (pix - bg), 0.0, 1.0)

    def downscaled(self, max_pixels: int) -> "LayerStack":
        """A smaller copy for display (same layers, alphas still summing to one); the
        stack itself when it is small enough."""
        h, w = self.shape
        if h * w <= max_pixels:
            return self
        s = (max_pixels / (h * w)) ** 0.5
        sh, sw = max(1, int(h * s)), max(1, int(w * s))
        image = np.clip(resize(self.image, sh, sw), 0.0, 1.0)
        alphas = np.stack([resize(a, sh, sw) for a in self._alphas])
        alphas /= np.maximum(alphas.sum(axis=0, keepdims=True), 1e-8)
        return LayerStack(image, alphas, self._layers)


def all_seeds(layers: Sequence[Layer]) -> list[tuple[int, Seed]]:
    return [(k, s) for k, layer in enumerate(layers) for s in layer.seeds]


def _free_name(layers: Sequence[Layer]) -> str:
    names = {l.name for l in layers}
    return next(default_name(k) for k in range(len(layers), len(layers) + len(names) + 2)
                if default_name(k) not in names)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, np.float32)
    a.setflags(write=False)
    return a


def sums_to_one(alphas: np.ndarray, atol: float = 1e-4) -> bool:
    return bool(np.allclose(alphas.sum(axis=0), 1.0, atol=atol))
