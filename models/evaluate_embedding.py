"""Figures for the model card, on the held-out split only (never trained on).

    OMP_NUM_THREADS=1 python models/evaluate_embedding.py [--model models/sss_embed.onnx]

1. Agreement with the teachers: adjusted Rand index between k-means (k = 8)
   clusterings of the student's and the teachers' embeddings (teachers: each
   256-D feature L2-normalised, concatenated), on the stride-4 grid of every
   held-out photo (cached size, longer side 384); mean over photos. For scale:
   ARI between the teachers' and raw RGB clusterings, and the ceiling set by
   k-means itself: the teachers' clustering against itself from another seed.
2. Metric quality on BSDS500 val: per photo and annotator, 600 pixels sampled
   from the human segments (at least 3 px from a boundary); how often the
   nearest other sampled pixel in embedding space lies in the same segment.
   Student vs teachers (concatenated and each alone) vs raw RGB.
3. CPU latency of one 640×480 photo through ``EmbeddingModel.embed`` with 2
   onnxruntime threads (median of 7 after a warm-up), and the ONNX file size.
Writes models/eval_results.json.

``--downstream`` instead measures what the app gets from an embedding: the layers it
gives on the held-out photos against the true mattes and segmentations, and against the
layers the teachers' features give, beside raw RGB (models/downstream.py); it writes
models/downstream_results.json and prints the model card's table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import teacher_cache  # noqa: E402
from sss_studio.segmentation.embedding import EmbeddingModel, EmbeddingParams  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
PHOTOS = teacher_cache.PHOTOS
N_INIT = 3   # k-means restarts (best inertia kept): single runs disagree with themselves


def kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 1, iterations: int = 100):
    """Seeded k-means (k-means++ start, Lloyd), centroid update as one matrix product so
    that 512-D teacher features cluster fast; best inertia of ``n_init`` restarts."""
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(seed)
    sq = (x * x).sum(1)

    def dist(c):
        return np.maximum(sq[:, None] - 2 * x @ c.T + (c * c).sum(1)[None], 0)

    best, best_inertia = None, np.inf
    for _ in range(n_init):
        c = [x[rng.integers(len(x))]]
        d = dist(np.array(c))[:, 0]
        for _ in range(1, k):
            c.append(x[rng.choice(len(x), p=d / d.sum())] if d.sum() > 0 else x[rng.integers(len(x))])
            d = np.minimum(d, dist(np.array(c[-1:]))[:, 0])
        c = np.array(c)
        for _ in range(iterations):
            lab = dist(c).argmin(1)
            onehot = np.zeros((len(x), k))
            onehot[np.arange(len(x)), lab] = 1
            counts = onehot.sum(0)
            new = np.where(counts[:, None] > 0, onehot.T @ x / np.maximum(counts, 1)[:, None], c)
            done = np.allclose(new, c, rtol=0, atol=1e-10)
            c = new
            if done:
                break
        inertia = dist(c).min(1).sum()
        if inertia < best_inertia:
            best, best_inertia = c, inertia
    return dist(best).argmin(1), best


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    a = np.unique(a, return_inverse=True)[1]
    b = np.unique(b, return_inverse=True)[1]
    table = np.zeros((a.max() + 1, b.max() + 1), np.int64)
    np.add.at(table, (a, b), 1)
    comb = lambda x: (x * (x - 1) / 2.0).sum()  # noqa: E731
    n = a.size
    sum_ij, sum_a, sum_b = comb(table), comb(table.sum(1)), comb(table.sum(0))
    expected = sum_a * sum_b / (n * (n - 1) / 2.0)
    maximum = 0.5 * (sum_a + sum_b)
    return float((sum_ij - expected) / (maximum - expected)) if maximum != expected else 1.0


def block_mean(f: np.ndarray, gh: int, gw: int, unit: bool = True) -> np.ndarray:
    """H×W×D (H = 4·gh) → gh×gw×D by 4×4 averaging, re-normalised if ``unit``."""
    d = f.shape[2]
    g = f[: 4 * gh, : 4 * gw].reshape(gh, 4, gw, 4, d).mean((1, 3))
    return g / np.maximum(np.linalg.norm(g, axis=2, keepdims=True), 1e-6) if unit else g


def teacher_embedding(sessions, rgb_u8: np.ndarray, gw: int, gh: int) -> np.ndarray:
    feats, _ = teacher_cache.teacher_maps(sessions, rgb_u8, gw, gh)
    return np.concatenate(feats, axis=2) / np.sqrt(2.0)


def agreement(model: EmbeddingModel, sessions, entries, k: int = 8) -> dict:
    aris, rgb_aris, self_aris = [], [], []
    for e in entries:
        rgb, gw, gh = teacher_cache._load_photo(PHOTOS / e["path"], teacher_cache.CacheParams().side)
        t = teacher_embedding(sessions, rgb, gw, gh).reshape(-1, 512)
        s = block_mean(model.embed(rgb.astype(np.float32) / 255), gh, gw).reshape(-1, model.embedding_dim)
        c = block_mean(rgb.astype(np.float32) / 255, gh, gw, unit=False).reshape(-1, 3)  # colour baseline
        lt = kmeans(t, k, seed=0, n_init=N_INIT)[0]
        aris.append(adjusted_rand_index(lt, kmeans(s, k, seed=0, n_init=N_INIT)[0]))
        rgb_aris.append(adjusted_rand_index(lt, kmeans(c, k, seed=0, n_init=N_INIT)[0]))
        # ceiling: k-means of the same teacher features from another seed
        self_aris.append(adjusted_rand_index(lt, kmeans(t, k, seed=1, n_init=N_INIT)[0]))
    return dict(photos=len(entries), ari_student_vs_teachers=float(np.mean(aris)),
                ari_student_vs_teachers_median=float(np.median(aris)),
                ari_rgb_vs_teachers=float(np.mean(rgb_aris)),
                ari_teachers_seed0_vs_seed1=float(np.mean(self_aris)))


def nn_same_segment(feats: np.ndarray, seg: np.ndarray, rng, n: int = 600) -> float:
    interior = cv2.erode((seg > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    # keep pixels at least 3 px from any boundary between segments
    edges = np.zeros(seg.shape, bool)
    edges[:-1] |= seg[:-1] != seg[1:]
    edges[1:] |= seg[:-1] != seg[1:]
    edges[:, :-1] |= seg[:, :-1] != seg[:, 1:]
    edges[:, 1:] |= seg[:, :-1] != seg[:, 1:]
    far = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 3) >= 3
    ys, xs = np.nonzero(far & (interior > 0))
    pick = rng.choice(len(ys), min(n, len(ys)), replace=False)
    f = feats[ys[pick], xs[pick]].astype(np.float64)
    lab = seg[ys[pick], xs[pick]]
    d = (f * f).sum(1)[:, None] - 2 * f @ f.T + (f * f).sum(1)[None]
    np.fill_diagonal(d, np.inf)
    return float(np.mean(lab[np.argmin(d, axis=1)] == lab))


def metric_quality(model: EmbeddingModel, sessions, rows) -> dict:
    scores = {k: [] for k in ("student", "teachers", "ade20k", "pascal", "rgb")}
    for row in rows:
        bgr = cv2.imread(str(PHOTOS / row["path"]))
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        h, w = rgb.shape[:2]
        img = rgb.astype(np.float32) / 255
        # teachers at the same working size as the student sees, upsampled to the photo
        x = rgb.astype(np.float32).transpose(2, 0, 1)[None]
        per = []
        for s in sessions:
            f = s.run(["features"], {"image": x})[0][0].transpose(1, 2, 0)
            f = f / np.maximum(np.linalg.norm(f, axis=2, keepdims=True), 1e-6)
            f = teacher_cache._resize_map(f, w, h)
            per.append(f / np.maximum(np.linalg.norm(f, axis=2, keepdims=True), 1e-6))
        cand = dict(student=model.embed(img), teachers=np.concatenate(per, 2), ade20k=per[0],
                    pascal=per[1], rgb=img)
        for gt in [g for g in row["gt_path"].split(";") if g]:
            seg = cv2.imread(str(PHOTOS / gt), cv2.IMREAD_UNCHANGED).astype(np.int32)
            for name, f in cand.items():
                rng = np.random.default_rng(len(scores[name]))   # same pixels for every candidate
                scores[name].append(nn_same_segment(f, seg, rng))
    return {f"nn_same_segment_{k}": float(np.mean(v)) for k, v in scores.items()} | {
        "bsds_val_photos": len(rows), "annotations": len(scores["rgb"])}


def latency(path: pathlib.Path, threads: int = 2) -> dict:
    m = EmbeddingModel(path, prefer_gpu=False, params=EmbeddingParams(threads=threads))
    img = cv2.imread(str(PHOTOS / "camvid" / sorted((PHOTOS / "camvid").iterdir())[0].name))
    img = cv2.resize(img, (640, 480))[:, :, ::-1].astype(np.float32) / 255
    m.embed(img)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        m.embed(img)
        times.append(time.perf_counter() - t)
    return dict(latency_640x480_ms=1000 * float(np.median(times)), latency_min_ms=1000 * float(np.min(times)),
                latency_threads=threads, provider=m.provider)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=pathlib.Path, nargs="+", default=[REPO / "models" / "sss_embed.onnx"],
                    help="the model (--downstream: one or more, compared side by side)")
    ap.add_argument("--out", type=pathlib.Path,
                    help="default: models/eval_results.json (--downstream: models/downstream_results.json)")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-agreement", action="store_true")
    ap.add_argument("--skip-metric", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="only the first N photos of each set (quick look)")
    ap.add_argument("--downstream", action="store_true", help="layers through the pipeline (models/downstream.py)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="--downstream: run seeds")
    ap.add_argument("--bsds", type=int, default=16, help="--downstream: BSDS500 validation photos")
    ap.add_argument("--jobs", type=int, default=2, help="--downstream: runs side by side")
    ap.add_argument("--sources", nargs="+", default=["alphamatting_com", "bsds500", "coco128"],
                    help="--downstream: which held-out sets (a quick look: alphamatting_com)")
    ap.add_argument("--no-baselines", action="store_true", help="--downstream: skip raw RGB")
    args = ap.parse_args()
    if args.downstream:
        return run_downstream(args)
    args.model = args.model[0]
    args.out = args.out or REPO / "models" / "eval_results.json"
    index = json.loads((teacher_cache.CACHE / "index.json").read_text())
    held = [e for e in index["entries"] if e["split"] == "val"]
    rows = {r["path"]: r for r in teacher_cache.read_manifest()}
    bsds_val = [rows[e["path"]] for e in held if e["source"] == "bsds500"]
    if args.limit:
        held, bsds_val = held[: args.limit], bsds_val[: args.limit]
    model = EmbeddingModel(args.model, prefer_gpu=False, params=EmbeddingParams(threads=1))
    sessions = [teacher_cache._session("ade20k", 1), teacher_cache._session("pascal", 1)]
    res = dict(model=args.model.name, size_mb=round(args.model.stat().st_size / 1e6, 2),
               embedding_dim=model.embedding_dim)
    if not args.skip_agreement:
        res.update(agreement(model, sessions, held))
        print(json.dumps(res), flush=True)
    if not args.skip_metric:
        res.update(metric_quality(model, sessions, bsds_val))
        print(json.dumps(res), flush=True)
    if not args.skip_latency:
        res.update(latency(args.model))
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


def run_downstream(args) -> None:
    import downstream

    names = {f"student:{m}": (m.stem if m.parent == REPO / "models" else str(m)) for m in args.model}
    features = list(names) + ["teachers"] + ([] if args.no_baselines else ["rgb"])
    results, rows = downstream.evaluate(features, PHOTOS, args.seeds, args.bsds, args.jobs,
                                        tuple(args.sources))
    results = {names.get(f, f): v for f, v in results.items()}
    out = args.out or REPO / "models" / "downstream_results.json"
    out.write_text(json.dumps(dict(seeds=args.seeds, photos=[r["path"] for r in rows], results=results), indent=1) + "\n")
    print(downstream.table(results, rows, args.seeds))


if __name__ == "__main__":
    main()
