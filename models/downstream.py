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
from bench_truth import best_subset_sad, covering  # noqa: E402

import teacher_cache  # noqa: E402

FEATURE_CACHE = REPO / ".cache" / "downstream"


def held_out_rows(photos: pathlib.Path, bsds: int) -> list[dict]:
    """Held-out photos with ground truth: mattes, BSDS500 val (first ``bsds``), COCO panoptic."""
    rows = [r for r in teacher_cache.read_manifest(photos)
            if teacher_cache.split_of(r["path"], r["source"], teacher_cache.CacheParams().holdout_fraction) == "val"]
    mattes = [r for r in rows if r["source"] == "alphamatting_com" and "_alpha.png" in r["gt_path"]]
    bsds_rows = sorted((r for r in rows if r["source"] == "bsds500" and "_seg" in r["gt_path"]
                        and "/val_" in r["path"]), key=lambda r: r["path"])[:bsds]
    coco = [r for r in rows if r["source"] == "coco128" and "_pan.png" in r["gt_path"]]
    return mattes + bsds_rows + sorted(coco, key=lambda r: r["path"])


def load_truth(photos: pathlib.Path, row: dict, h: int, w: int) -> tuple[str, np.ndarray]:
    gts = [photos / p for p in row["gt_path"].split(";") if p]
    alpha = [p for p in gts if p.name.endswith("_alpha.png")]
    if alpha:
        a = cv2.imread(str(alpha[0]), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        return "alpha", cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)
    pan = [p for p in gts if p.name.endswith("_pan.png")]
    if pan:
        bgr = cv2.imread(str(pan[0]), cv2.IMREAD_COLOR).astype(np.int64)
        ids = bgr[..., 0] + 256 * bgr[..., 1] + 65536 * bgr[..., 2]
        return "coco", cv2.resize(ids.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)[None]
    segs = [cv2.resize(cv2.imread(str(p), cv2.IMREAD_UNCHANGED), (w, h), interpolation=cv2.INTER_NEAREST)
            for p in gts if "_seg" in p.name]
    return "bsds", np.stack(segs)


def teacher_features(rgb_u8: np.ndarray, key: str) -> np.ndarray:
    """The teachers' concatenated unit features at the photo's size (raw outputs cached)."""
    from sss_studio.resize import LINEAR, resize

    FEATURE_CACHE.mkdir(parents=True, exist_ok=True)
    path = FEATURE_CACHE / f"{key.replace('/', '_')}_{rgb_u8.shape[1]}x{rgb_u8.shape[0]}.npz"
    if path.exists():
        raw = dict(np.load(path))
    else:
        x = rgb_u8.astype(np.float32).transpose(2, 0, 1)[None]
        raw = {n: teacher_cache._session(n, 1).run(["features"], {"image": x})[0][0].transpose(1, 2, 0)
               for n in ("ade20k", "pascal")}
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: v.astype(np.float16) for k, v in raw.items()})
        tmp.replace(path)
    h, w = rgb_u8.shape[:2]

    def unit(f):
        return f / np.maximum(np.linalg.norm(f, axis=2, keepdims=True), 1e-6)

    return np.concatenate([unit(resize(unit(raw[n].astype(np.float32)), h, w, LINEAR))
                           for n in ("ade20k", "pascal")], axis=2)


def matte_split(alphas: np.ndarray, truth: np.ndarray) -> dict:
    """Best-subset SAD (thousands), and where its error lies."""
    sad, subset = best_subset_sad(alphas, truth)
    m = np.clip(alphas[list(subset)].sum(axis=0), 0, 1) if subset else np.zeros_like(truth)
    err = np.abs(m - truth)
    return {"sad": sad / 1000, "bg": float(err[truth <= 0.02].sum()) / 1000,
            "fg": float(err[truth >= 0.98].sum()) / 1000,
            "band": float(err[(truth > 0.02) & (truth < 0.98)].sum()) / 1000}


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
    photos, row, feature, seed = args
    key = _run_key(row, feature, seed)
    if key.exists():
        with np.load(key, allow_pickle=False) as z:
            return dict(json.loads(str(z["meta"])), alphas=z["alphas"])
    out = _run(photos, row, feature, seed)
    key.parent.mkdir(parents=True, exist_ok=True)
    tmp = key.with_suffix(f".{os.getpid()}.tmp.npz")
    meta = {k: v for k, v in out.items() if k != "alphas"}
    np.savez(tmp, alphas=out["alphas"], meta=json.dumps(meta))
    os.replace(tmp, key)
    return out


def _run(photos: pathlib.Path, row: dict, feature: str, seed: int) -> dict:
    C.limit_threads(1)
    from sss_studio.segmentation.embedding import EmbeddingModel, EmbeddingParams
    from sss_studio.segmentation.params import SegmenterParams
    from sss_studio.segmentation.pipeline import Segmenter

    rgb = cv2.cvtColor(cv2.imread(str(photos / row["path"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    img = rgb.astype(np.float32) / 255.0
    h, w = img.shape[:2]
    model, feats = None, None
    if feature.startswith("student:"):
        model = EmbeddingModel(feature.split(":", 1)[1], prefer_gpu=False, params=EmbeddingParams(threads=1))
    elif feature.startswith("student+classes"):   # student:PATH's embedding beside w × its class probabilities
        spec, path = feature.split(":", 1)
        wt = float(spec.split("@")[1]) if "@" in spec else 1.0
        m = EmbeddingModel(path, prefer_gpu=False, params=EmbeddingParams(threads=1))
        feats = np.concatenate([m.embed(img), wt * m.classify(img)], axis=2)
    elif feature == "teachers":
        feats = teacher_features(rgb, row["path"].rsplit(".", 1)[0])
    elif feature == "rgb":
        feats = img.copy()
    else:
        raise ValueError(feature)
    seg = Segmenter(SegmenterParams(seed=seed), embedding_model=model, threads=1)
    seg.set_image(img, features=feats)
    t0 = time.perf_counter()
    alphas = seg.run().alphas
    kind, truth = load_truth(photos, row, h, w)
    score = matte_split(alphas, truth) if kind == "alpha" else {"covering": covering(alphas, truth)["covering"]}
    return dict(photo=row["path"], kind=kind, feature=feature, seed=seed, score=score,
                seconds=time.perf_counter() - t0, alphas=alphas.astype(np.float16))


def summarise(runs: list[dict], feature: str, seeds: list[int]) -> dict:
    mine = [r for r in runs if r["feature"] == feature]
    teach = {(r["photo"], r["seed"]): r for r in runs if r["feature"] == "teachers"}

    def per_seed(fn) -> list[float]:
        out = []
        for s in seeds:
            v = [x for x in (fn(r) for r in mine if r["seed"] == s) if x is not None]
            out.append(float(np.mean(v)) if v else float("nan"))
        return out

    res = {m: per_seed(lambda r, m=m: r["score"][m] if r["kind"] == "alpha" else None)
           for m in ("sad", "bg", "fg", "band")}
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
            rgb = cv2.cvtColor(cv2.imread(str(photos / r["path"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            teacher_features(rgb, r["path"].rsplit(".", 1)[0])
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
