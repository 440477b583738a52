"""The Python API as a script user meets it: importable without Qt or side effects,
one call from a photo to layers that sum to one, and the writers it re-exports."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from psd_tools import PSDImage

from synthetic import best_match_errors, soft_regions


def test_import_needs_no_qt_and_changes_no_environment():
    code = ("import os, sys; before = dict(os.environ); "
            "from sss_studio import segment, Segmenter, LayerStack, write_psd; "
            "print('PySide6' in sys.modules, all(callable(x) for x in (segment, Segmenter, LayerStack, write_psd)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_segment_a_photo_file_with_given_features(tmp_path):
    from sss_studio import LayerStack, segment, write_psd

    image, feats, truth = soft_regions(40, 56)
    path = tmp_path / "photo.png"
    Image.fromarray((image * 255).round().astype(np.uint8)).save(path)
    result = segment(path, layers=3, features=feats, mode="reference")
    assert result.alphas.shape == (3, 40, 56)
    assert np.abs(result.alphas.sum(axis=0) - 1).max() <= 1e-3
    assert max(best_match_errors(result.alphas, truth)) <= 0.06
    assert result.layer_names == ["Layer 1", "Layer 2", "Layer 3"]
    stack = LayerStack(result.image, result.alphas)
    k = stack.hit_test(5, 20)  # the left band
    assert result.alphas[k, 20, 5] == result.alphas[:, 20, 5].max()
    write_psd(tmp_path / "out.psd", result.image, result.alphas, result.layer_names)
    assert [l.name for l in PSDImage.open(tmp_path / "out.psd")] == ["Photo"] + result.layer_names


def test_segment_refuses_features_of_another_size():
    from sss_studio import segment

    image, feats, _ = soft_regions(40, 56)
    with pytest.raises(ValueError, match="sizes must match"):
        segment(image, features=feats[:-1])


def test_the_bundled_model_by_default():
    from sss_studio import segment

    image = np.asarray(Image.open(os.path.join(os.path.dirname(__file__), "..", "resources", "samples",
                                               "chelsea.png")).convert("RGB").resize((96, 64)))
    result = segment(image, layers=3, prefer_gpu=False)
    assert result.provider and result.alphas.shape == (3, 64, 96)
    assert np.abs(result.alphas.sum(axis=0) - 1).max() <= 1e-3
