"""Layer names from the class head: the class that owns a layer names it."""

from __future__ import annotations

import numpy as np
import pytest

from sss_studio.segmentation.layer_names import layer_class_shares, name_layers, readable

NAMES = ["ade20k:other", "ade20k:sky", "ade20k:tree", "ade20k:windowpane",
         "pascal:background", "pascal:person", "pascal:pottedplant"]


def _scene(h=20, w=30):
    """Left third sky, middle a person, right an unnamed region (catch-alls), as hard layers."""
    probs = np.zeros((h, w, len(NAMES)), np.float32)
    probs[:, :10, 1] = 0.9          # sky
    probs[:, :10, 0] = 0.1
    probs[:, :10, 4] = 1.0          # no object there
    probs[:, 10:20, 0] = 1.0        # scene: other …
    probs[:, 10:20, 5] = 0.8        # … object: person
    probs[:, 10:20, 4] = 0.2
    probs[:, 20:, 0] = 1.0          # nothing nameable
    probs[:, 20:, 4] = 1.0
    alphas = np.zeros((3, h, w), np.float32)
    alphas[0, :, :10] = alphas[1, :, 10:20] = alphas[2, :, 20:] = 1.0
    return alphas, probs


def test_the_dominant_class_names_each_layer_and_objects_win():
    alphas, probs = _scene()
    assert name_layers(alphas, probs, NAMES) == ["sky", "person", "Layer 3"]


def test_a_close_call_between_two_classes_is_no_name():
    # The bundled model has no "cup": a coffee cup came out 0.35 car, 0.27 floor.
    alphas, probs = _scene()
    probs[:, :10, 1], probs[:, :10, 2], probs[:, :10, 0] = 0.4, 0.35, 0.25    # sky vs tree
    assert name_layers(alphas, probs, NAMES)[0] == "Layer 1"
    probs[:, :10, 1], probs[:, :10, 2], probs[:, :10, 0] = 0.6, 0.3, 0.1      # a clear winner
    assert name_layers(alphas, probs, NAMES)[0] == "sky"


def test_shares_are_alpha_weighted_means():
    alphas, probs = _scene()
    soft = alphas.copy()
    soft[0, :, 10:20] = 0.5        # half of the person region leaks into layer 0
    shares = layer_class_shares(soft, probs)
    assert shares[0, 1] == pytest.approx((200 * 0.9) / 300, rel=1e-6)
    assert shares[1, 5] == pytest.approx(0.8)


def test_repeated_names_are_numbered_and_readable():
    alphas, probs = _scene()
    probs[:, 20:, 5], probs[:, 20:, 4] = 0.7, 0.3   # a second person
    assert name_layers(alphas, probs, NAMES) == ["sky", "person", "person 2"]
    assert readable("pascal:pottedplant") == "potted plant" and readable("ade20k:windowpane") == "window"


def test_weak_or_mismatched_probabilities_keep_numbered_names():
    alphas, probs = _scene()
    assert name_layers(alphas, probs * 0.3, NAMES) == ["Layer 1", "Layer 2", "Layer 3"]
    assert name_layers(alphas, probs[:, :, :5], NAMES) == ["Layer 1", "Layer 2", "Layer 3"]


def test_bundled_model_names_the_layers_of_a_photo():
    """End to end with the shipped model: the Segmenter's layers come back named."""
    from sss_studio.segmentation.embedding import EmbeddingModel, default_model_path
    from sss_studio.segmentation.pipeline import Segmenter, SegmenterParams
    from sss_studio.io.image import load_image

    path = default_model_path()
    if not path.exists():
        pytest.skip("bundled model not built")
    model = EmbeddingModel(path, prefer_gpu=False)
    assert model.has_classes
    root = path.parents[1]
    image = load_image(root / "resources" / "samples" / "astronaut.png")
    # Fast mode at a small working size (quick); the class head looks at the whole photo.
    seg = Segmenter(SegmenterParams.for_mode("fast", layers=3, working_pixels=20_000), embedding_model=model)
    seg.set_image(image)
    result = seg.run()
    names = result.layer_names
    assert names is not None and len(names) == result.layer_count == 3
    assert len(set(names)) == 3 and all(isinstance(n, str) and n for n in names)
    # The astronaut photo is a portrait: its largest layers include the person.
    assert "person" in names
