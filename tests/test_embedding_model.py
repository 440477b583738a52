"""The ONNX embedding runtime: contract checks, shapes, provider fallback, errors.

Needs neither ../shared nor a GPU: tiny models are built here with onnx.helper;
the bundled model is exercised on a small photo when present.
"""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from sss_studio.segmentation import embedding as features  # noqa: E402
from sss_studio.segmentation.cancel import Cancelled  # noqa: E402
from sss_studio.segmentation.embedding import EmbeddingModel, EmbeddingParams, ModelError  # noqa: E402

D, C = 8, 5


def _save(tmp_path, nodes, inits, outputs, name="m.onnx", channels=3):
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", channels, "H", "W"])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = model.metadata_props.add()
    meta.key, meta.value = "class_names", '["a", "b", "c", "d", "e"]'
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def tiny_model(tmp_path, channels=3):
    """embedding = unit-normalised 1×1 conv of the image; class_probs = softmax at stride 4."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(D, channels, 1, 1)).astype(np.float32), "we"),
        numpy_helper.from_array(np.ones(D, np.float32), "be"),
        numpy_helper.from_array(rng.normal(size=(C, channels, 1, 1)).astype(np.float32), "wc"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "we", "be"], ["raw"]),
        helper.make_node("LpNormalization", ["raw"], ["embedding"], axis=1, p=2),
        helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4], ceil_mode=1),
        helper.make_node("Conv", ["pooled", "wc"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["class_probs"], axis=1),
    ]
    outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", D, "H", "W"]),
               helper.make_tensor_value_info("class_probs", TensorProto.FLOAT, ["N", C, "h", "w"])]
    return _save(tmp_path, nodes, inits, outputs, channels=channels)


@pytest.fixture
def photo():
    rng = np.random.default_rng(1)
    return rng.random((37, 50, 3), dtype=np.float32)


def test_embed_shapes_dtype_unit_norm(tmp_path, photo):
    m = EmbeddingModel(tiny_model(tmp_path), prefer_gpu=False)
    assert m.embedding_dim == D and m.class_names == list("abcde")
    f = m.embed(photo)
    assert f.shape == (37, 50, D) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=2), 1.0, atol=1e-4)
    p = m.classify(photo)
    assert p.shape == (37, 50, C) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=2), 1.0, atol=1e-4)


def test_one_pass_gives_both_outputs_as_the_separate_calls(tmp_path, photo):
    m = EmbeddingModel(tiny_model(tmp_path), prefer_gpu=False)
    f, p = m.embed_and_classify(photo)
    np.testing.assert_array_equal(f, m.embed(photo))
    np.testing.assert_array_equal(p, m.classify(photo))
    small_f, small_p = m.embed_and_classify(photo, size=(18, 25))     # averaged down to a working size
    assert small_f.shape == (18, 25, D) and small_p.shape == (18, 25, C)
    np.testing.assert_allclose(np.linalg.norm(small_f, axis=2), 1.0, atol=1e-4)
    np.testing.assert_allclose(small_p.sum(axis=2), 1.0, atol=1e-4)


def test_large_photo_is_resized_and_upsampled(tmp_path):
    m = EmbeddingModel(tiny_model(tmp_path), prefer_gpu=False, params=EmbeddingParams(max_side=64))
    img = np.random.default_rng(2).random((120, 200, 3), dtype=np.float32)
    f = m.embed(img)
    assert f.shape == (120, 200, D)
    np.testing.assert_allclose(np.linalg.norm(f, axis=2), 1.0, atol=1e-4)


def test_prefer_gpu_falls_back_to_cpu(tmp_path):
    m = EmbeddingModel(tiny_model(tmp_path), prefer_gpu=True)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert m.provider == "CPUExecutionProvider"
    else:
        assert m.provider in ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert EmbeddingModel(tiny_model(tmp_path), prefer_gpu=False).provider == "CPUExecutionProvider"


def test_cancel_raises(tmp_path, photo):
    m = EmbeddingModel(tiny_model(tmp_path), prefer_gpu=False)
    with pytest.raises(Cancelled):
        m.embed(photo, cancel=lambda: True)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        EmbeddingModel(tmp_path / "nope.onnx")


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf\x00\xff" * 10)
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        EmbeddingModel(bad)


def test_wrong_outputs(tmp_path):
    nodes = [helper.make_node("Relu", ["image"], ["features"])]
    outputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    path = _save(tmp_path, nodes, [], outputs, name="wrong.onnx")
    with pytest.raises(ModelError, match="'embedding'"):
        EmbeddingModel(path)


def test_wrong_input_channels(tmp_path):
    with pytest.raises(ModelError, match="3 channels"):
        EmbeddingModel(tiny_model(tmp_path, channels=1))


def test_default_model_path_env(monkeypatch, tmp_path):
    monkeypatch.setenv(features.MODEL_ENV, str(tmp_path / "x.onnx"))
    assert features.default_model_path() == tmp_path / "x.onnx"
    monkeypatch.delenv(features.MODEL_ENV)
    assert features.default_model_path().name == "sss_embed.onnx"
    assert features.default_model_path().parent.name == "models"


def test_bundled_model_contract(monkeypatch):
    monkeypatch.delenv(features.MODEL_ENV, raising=False)
    path = features.default_model_path()
    if not path.exists():
        pytest.skip("bundled model not built")
    m = EmbeddingModel(path, prefer_gpu=False)
    assert 16 <= m.embedding_dim <= 128
    assert len(m.class_names) == 53
    img = np.random.default_rng(3).random((61, 83, 3), dtype=np.float32)
    f = m.embed(img)
    assert f.shape == (61, 83, m.embedding_dim) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=2), 1.0, atol=1e-3)
    p = m.classify(img)
    assert p.shape == (61, 83, 53)
    np.testing.assert_allclose(p.sum(axis=2), 2.0, atol=1e-3)   # one softmax per teacher label set


def test_a_gpu_install_that_runs_on_the_cpu_says_why():
    from sss_studio.segmentation.embedding import cuda_note

    cpu, cuda = "CPUExecutionProvider", "CUDAExecutionProvider"
    # A CPU install, or --cpu: nothing to say.
    assert cuda_note(["onnxruntime"], [cpu], cpu, True) is None
    assert cuda_note(["onnxruntime-gpu"], [cuda, cpu], cpu, False) is None
    assert cuda_note(["onnxruntime-gpu"], [cuda, cpu], cuda, True) is None
    both = cuda_note(["onnxruntime", "onnxruntime-gpu"], [cpu], cpu, True)
    assert "both installed" in both and "pip uninstall onnxruntime" in both
    assert "no CUDA provider" in cuda_note(["onnxruntime-gpu"], [cpu], cpu, True)
    failed = cuda_note(["onnxruntime-gpu"], [cuda, cpu], cpu, True)
    assert "CUDA did not start" in failed and "sss_studio[gpu]" in failed
    for note in (both, failed):
        assert "\n" not in note and "\033" not in note
