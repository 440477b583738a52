"""Dense products and factorisations give the same bits on one thread and on two, and
so does a whole run: a photo gives the same layers on an idle and on a busy machine."""

import os

import numpy as np
import pytest

from sss_studio.segmentation.cpu_budget import thread_budget
from sss_studio.segmentation.dense import eigh, gram, tall_dot

SHAPES = [  # (rows, columns of A, columns of B): shapes OpenBLAS splits differently on 2 threads
    (5000, 24, 40), (5000, 80, 24), (19886, 88, 140), (1243, 40, 3240), (20000, 84, 1), (7, 3, 2),
]


@pytest.mark.parametrize("n,m,p", SHAPES)
def test_gram_is_the_product_and_repeats_bit_for_bit_on_any_thread_count(n, m, p):
    rng = np.random.default_rng(n + m + p)
    A, B = rng.standard_normal((n, m)), rng.standard_normal((n, p))
    out = {}
    for threads in (1, 2, 3):
        with thread_budget(threads):
            out[threads] = (gram(A, B), gram(A), gram(A, B[:, 0]))
    np.testing.assert_allclose(out[1][0], A.T @ B, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(out[1][1], A.T @ A, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(out[1][2], A.T @ B[:, 0], rtol=1e-10, atol=1e-9)
    for threads in (2, 3):
        for a, b in zip(out[1], out[threads]):
            assert np.array_equal(a, b)


def test_float32_gram_stays_float32():
    A = np.ones((100, 3), np.float32)
    assert gram(A).dtype == np.float32 and gram(A)[0, 0] == 100.0


def test_tall_dot_and_eigh_repeat_on_any_thread_count():
    rng = np.random.default_rng(1)
    A, b = rng.standard_normal((19886, 168)), rng.standard_normal((168, 1))
    G = rng.standard_normal((151, 151))
    G = G + G.T
    out = {}
    for threads in (1, 2):
        with thread_budget(threads):
            out[threads] = (tall_dot(A, b), tall_dot(A, b[:, 0]), *eigh(G))
    np.testing.assert_allclose(out[1][0], A @ b, rtol=1e-10, atol=1e-9)
    assert out[1][1].shape == (19886,)
    w, V = out[1][2], out[1][3]
    np.testing.assert_allclose(G @ V, V * w, atol=1e-9)
    for a, c in zip(out[1], out[2]):
        assert np.array_equal(a, c)


def test_a_photo_gives_the_same_layers_on_one_thread_and_on_two():
    """The app's default (fast) run with the bundled model: the run sizes its threads to the
    free cores, so an idle and a busy machine differ only in the thread count."""
    from PIL import Image

    from sss_studio.resize import resize
    from sss_studio.segmentation.embedding import EmbeddingModel
    from sss_studio.segmentation.params import SegmenterParams
    from sss_studio.segmentation.pipeline import Segmenter

    path = os.path.join(os.path.dirname(__file__), "..", "resources", "samples", "astronaut.png")
    photo = resize(np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0, 240, 320)
    model = EmbeddingModel(prefer_gpu=False)
    alphas = []
    for threads in (1, 2):
        seg = Segmenter(SegmenterParams(), embedding_model=model, threads=threads)
        seg.set_image(photo)
        alphas.append(seg.run().alphas)
    assert alphas[0].shape == alphas[1].shape
    np.testing.assert_allclose(alphas[0].sum(axis=0), 1.0, atol=1e-3)
    assert np.array_equal(alphas[0], alphas[1])
