"""Downstream figures of an embedding: the layers it gives through the app's own pipeline.

    python models/evaluate_embedding.py --downstream [--model A.onnx [B.onnx ...]] [--seeds 0 1 2]

The held-out split only (``teacher_cache.split_of``: never trained on): the 7 alpha-matte
photos, the first ``--bsds`` BSDS500 validation photos and the held-out COCO panoptic
photos, each at its own size (the corpus keeps them at ≤ 512 px). Each photo runs through
``Segmenter`` with the preset fast mode (working size, edges stage and all) and features
from one of:

* ``student:NAME``: an ONNX embedding model, embedded as the app does;
* ``teachers``: the two DeepLab teachers' 256-D features (ADE20K decoder, stride 4;
  PASCAL ASPP projection, stride 8), each L2-normalised, upsampled to the photo,
  normalised again and concatenated (512-D); the same preprocessing follows (guided
  filter, PCA to 3, min-max);
* ``rgb``: the photo's own colours as the semantic feature (the floor);
* ``student+classes@W:PATH``: the model's embedding beside W × its class probabilities
  (an experiment: it made the layers worse, see the model card).

Scores (mean over photos, as mean (lowest–highest) over run seeds):

* matte SAD (thousands) of the best subset of layers against the true matte, and its
  split into error on the true background (α = 0), foreground (α = 1) and the band;
* covering of the BSDS500 human partitions and of the COCO panoptic partition by the
  hard layers;
* matched IoU of the hard layers against the teachers' layers of the same seed (the
  Hungarian matching of ``benchmarks/_common.match_layers``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import pathlib
import sys
import time
from multiprocessing import get_context

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import _common as C  # noqa: E402  (single-threaded BLAS before numpy)
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import bench_quality  # noqa: E402
from bench_truth import covering, soft_scores  # noqa: E402

import teacher_cache  # noqa: E402

FEATURE_CACHE = REPO / ".cache" / "downstream"
KINDS = {"alphamatting_com": "alpha", "bsds500": "bsds", "coco128": "coco"}


def held_out_rows(photos: pathlib.Path, bsds: int) -> list[dict]:
    """Held-out photos with ground truth: mattes, BSDS500 val (first ``bsds``), COCO panoptic."""
    rows = [r for r in teacher_cache.read_manifest(photos)
            if teacher_cache.split_of(r["path"], r["source"], teacher_cache.CacheParams().holdout_fraction) == "val"]
    mattes = [r for r in rows if r["source"] == "alphamatting_com" and "_alpha.png" in r["gt_path"]]
    bsds_rows = sorted((r for r in rows if r["source"] == "bsds500" and "_seg" in r["gt_path"]
                        and "/val_" in r["path"]), key=lambda r: r["path"])[:bsds]
    coco = [r for r in rows if r["source"] == "coco128" and "_pan.png" in r["gt_path"]]
    return mattes + bsds_rows + sorted(coco, key=lambda r: r["path"])


def teacher_features(img: np.ndarray, key: str) -> np.ndarray:
    """The teachers' features at the photo's size (_common's), their raw outputs cached:
    a few MB per photo instead of the 512-D full-size map."""
    FEATURE_CACHE.mkdir(parents=True, exist_ok=True)
    path = FEATURE_CACHE / f"{key.replace('/', '_')}_{img.shape[1]}x{img.shape[0]}.npz"
    if path.exists():
        raw = dict(np.load(path))
    else:
        raw = C.teacher_outputs(img)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: v.astype(np.float16) for k, v in raw.items()})
        tmp.replace(path)
    return C.teacher_features_at(raw, *img.shape[:2])


def _photo(photos: pathlib.Path, row: dict) -> np.ndarray:
    """RGB float32 in [0, 1], at its own size."""
    bgr = cv2.imread(str(photos / row["path"]), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def _run_key(row: dict, feature: str, seed: int) -> pathlib.Path:
    """Where a run's result is kept: the features (a model by its bytes), the photo, the
    preset's parameters; a run is only repeated when one of them changed."""
    from sss_studio.segmentation.params import SegmenterParams

    what = feature
    if ":" in feature:   # a model file: known by its bytes
        kind, path = feature.split(":", 1)
        what = kind.replace("+", "-").replace("@", "-") + "-" + hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()[:12]
    params = hashlib.sha256(repr(SegmenterParams(seed=seed)).encode()).hexdigest()[:10]
    return FEATURE_CACHE / "runs" / f"{what}_{row['path'].replace('/', '_')}_{params}.npz"


def one_run(args) -> dict:
    """One photo, feature and seed: the layers (cached: the pipeline's output, not its
    score, so the scoring can change without re-running), then their scores."""
    photos, row, feature, seed = args
    key = _run_key(row, feature, seed)
    if key.exists():
        with np.load(key, allow_pickle=False) as z:
            alphas, seconds = z["alphas"], float(json.loads(str(z["meta"]))["seconds"])
    else:
        alphas, seconds = _layers(photos, row, feature, seed)
        key.parent.mkdir(parents=True, exist_ok=True)
        tmp = key.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, alphas=alphas, meta=json.dumps({"seconds": seconds}))
        os.replace(tmp, key)
    kind, truth = bench_quality.truth(photos, row)
    a = alphas.astype(np.float32)
    score = soft_scores(a, truth) if kind == "alpha" else covering(a, truth)
    return dict(photo=row["path"], kind=KINDS[row["source"]], feature=feature, seed=seed, score=score,
                seconds=seconds, alphas=alphas)


def _layers(photos: pathlib.Path, row: dict, feature: str, seed: int) -> tuple[np.ndarray, float]:
    C.limit_threads(1)
    from sss_studio.segmentation.embedding import EmbeddingModel, EmbeddingParams
    from sss_studio.segmentation.params import SegmenterParams
    from sss_studio.segmentation.pipeline import Segmenter

    img = _photo(photos, row)
    model, feats = None, None
    if feature.startswith("student:"):
        model = EmbeddingModel(feature.split(":", 1)[1], prefer_gpu=False, params=EmbeddingParams(threads=1))
    elif feature.startswith("student+classes"):   # student:PATH's embedding beside w × its class probabilities
        spec, path = feature.split(":", 1)
        wt = float(spec.split("@")[1]) if "@" in spec else 1.0
        m = EmbeddingModel(path, prefer_gpu=False, params=EmbeddingParams(threads=1))
        feats = np.concatenate([m.embed(img), wt * m.classify(img)], axis=2)
    elif feature == "teachers":
        feats = teacher_features(img, row["path"].rsplit(".", 1)[0])
    elif feature == "rgb":
        feats = img.copy()
    else:
        raise ValueError(feature)
    seg = Segmenter(SegmenterParams(seed=seed), embedding_model=model, threads=1)
    seg.set_image(img, features=feats)
    t0 = time.perf_counter()
    alphas = seg.run().alphas
    return alphas.astype(np.float16), time.perf_counter() - t0


def summarise(runs: list[dict], feature: str, seeds: list[int]) -> dict:
    mine = [r for r in runs if r["feature"] == feature]
    teach = {(r["photo"], r["seed"]): r for r in runs if r["feature"] == "teachers"}

    def per_seed(fn) -> list[float]:
        out = []
        for s in seeds:
            v = [x for x in (fn(r) for r in mine if r["seed"] == s) if x is not None]
            out.append(float(np.mean(v)) if v else float("nan"))
        return out

    res = {m: per_seed(lambda r, k=k: r["score"][k] if r["kind"] == "alpha" else None)
           for m, k in (("sad", "soft"), ("bg", "bg"), ("fg", "fg"), ("band", "band"))}
    for kind in ("bsds", "coco"):
        res[kind] = per_seed(lambda r, kind=kind: r["score"]["covering"] if r["kind"] == kind else None)
    if feature != "teachers" and teach:
        res["iou_teachers"] = per_seed(lambda r: C.match_layers(teach[(r["photo"], r["seed"])]["alphas"].astype(np.float32),
                                                                r["alphas"].astype(np.float32))[0]
                                       if (r["photo"], r["seed"]) in teach else None)
    res["stability"] = [float(np.mean([C.match_layers(a["alphas"].astype(np.float32), b["alphas"].astype(np.float32))[0]
                                       for a in mine if a["seed"] == s0 for b in mine
                                       if b["seed"] == s1 and b["photo"] == a["photo"]]))
                        for s0, s1 in itertools.combinations(seeds, 2)]
    res["seconds"] = float(np.median([r["seconds"] for r in mine]))
    return res


def evaluate(features: list[str], photos: pathlib.Path, seeds: list[int], bsds: int, jobs: int,
             sources: tuple[str, ...] = ("alphamatting_com", "bsds500", "coco128")) -> tuple[dict, list]:
    rows = [r for r in held_out_rows(photos, bsds) if r["source"] in sources]
    if "teachers" in features:   # fill the teachers' cache once, before the pool reads it
        for r in rows:
            teacher_features(_photo(photos, r), r["path"].rsplit(".", 1)[0])
    tasks = [(photos, r, f, s) for f in features for s in seeds for r in rows]
    with get_context("spawn").Pool(jobs, maxtasksperchild=8) as pool:
        runs = list(pool.imap_unordered(one_run, tasks, chunksize=1))
    return {f: summarise(runs, f, seeds) for f in features}, rows


def table(results: dict, rows: list[dict], seeds: list[int]) -> str:
    def cell(v, fmt):
        v = [x for x in v if np.isfinite(x)] if v else []
        return f"{np.mean(v):{fmt}} ({min(v):{fmt}}–{max(v):{fmt}})" if v else "–"

    n = {k: sum(r["source"] == s for r in rows) for k, s in
         (("alpha", "alphamatting_com"), ("bsds", "bsds500"), ("coco", "coco128"))}
    head = ("| features | matte SAD | on background | on foreground | in the band | BSDS covering | "
            "COCO covering | IoU vs teachers' layers | seed-to-seed IoU | s per run |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {f} | {cell(s['sad'], '.2f')} | {cell(s['bg'], '.2f')} | {cell(s['fg'], '.2f')} | "
             f"{cell(s['band'], '.2f')} | {cell(s['bsds'], '.3f')} | {cell(s['coco'], '.3f')} | "
             f"{cell(s.get('iou_teachers'), '.3f')} | {cell(s['stability'], '.3f')} | {s['seconds']:.1f} |"
             for f, s in results.items()]
    note = (f"Held-out photos: {n['alpha']} alpha mattes, {n['bsds']} BSDS500 val, {n['coco']} COCO panoptic, "
            f"each at its own size; fast mode preset; run seeds {', '.join(map(str, seeds))}; mean over photos "
            "as mean (lowest–highest) over seeds. SAD in thousands (lower is better).")
    return note + "\n\n" + head + "\n" + "\n".join(lines)
