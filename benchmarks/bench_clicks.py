"""Clicks to a good layer (issue 17): the standard protocol of interactive segmentation,
run through the studio's own seed path (segmentation.seeds.seeded_layers).

For each ground-truth object (COCO panoptic segments and BSDS segments of at least 1 %
of the photo, the alpha-matte foregrounds), start from the automatic layer that
overlaps it most (IoU of α ≥ 0.5). A simulated user clicks at the interior point
farthest from the boundary of the largest error region: a seed for the layer where it
was missed, a "not this layer" seed where it was wrongly included. Every click
re-applies all seeds to the layers as they are, as the studio does. Count the clicks
until IoU ≥ 0.85 / 0.90 (capped at 20), at the photo's own size.

    python benchmarks/bench_clicks.py                       # ../shared/photos, 24 photos
    python benchmarks/bench_clicks.py --corpus DIR --limit 6 --json
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import pathlib
import sys
import time
from multiprocessing import get_context

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common as C  # noqa: E402  (single-threaded BLAS first)
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from sss_studio.segmentation.params import SeedParams  # noqa: E402

PHOTOS = C.REPO.parent / "shared" / "photos"
RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"
MAX_CLICKS = 20
MAX_SIDE = 1024          # larger photos are resized first (the benchmark's run time)
MIN_AREA = 0.01


def pick(corpus: pathlib.Path, limit: int) -> list[dict]:
    """Photos with object truth, taken in turn from each source (COCO, BSDS, mattes)."""
    rows = list(csv.DictReader(open(corpus / "manifest.csv")))
    groups: dict[str, list[dict]] = {}
    for r in rows:
        gts = r.get("gt_path", "")
        if any(t in gts for t in ("_pan.png", "_seg1.png", "_alpha.png")):
            groups.setdefault(r["source"], []).append(r)
    picked, lists = [], [g for _, g in sorted(groups.items())]
    i = 0
    while len(picked) < limit and any(i < len(g) for g in lists):
        picked += [g[i] for g in lists if i < len(g)]
        i += 1
    return picked[:limit]


def objects(corpus: pathlib.Path, row: dict, shape: tuple[int, int]) -> list[np.ndarray]:
    h, w = shape
    out = []
    for rel in filter(None, row["gt_path"].split(";")):
        p = corpus / rel
        if p.name.endswith("_pan.png"):
            rgb = cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.int64)
            ids = (rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).astype(np.int32)
        elif p.name.endswith("_seg1.png"):
            ids = cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.int32) + 1
        elif p.name.endswith("_alpha.png"):
            a = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            ids = (cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA) >= 128).astype(np.int32)
        else:
            continue
        ids = cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST)
        for i in np.unique(ids):
            m = ids == i
            if i != 0 and m.mean() >= MIN_AREA:
                out.append(m)
    return out


def next_click(pred: np.ndarray, truth: np.ndarray):
    """(y, x, positive) at the interior point of the largest error region, or None."""
    best = None
    for err, positive in ((truth & ~pred, True), (pred & ~truth, False)):
        n, lab, stats, _ = cv2.connectedComponentsWithStats(err.astype(np.uint8), connectivity=8)
        if n > 1:
            i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            if best is None or stats[i, cv2.CC_STAT_AREA] > best[0]:
                best = (stats[i, cv2.CC_STAT_AREA], lab == i, positive)
    if best is None:
        return None
    dist = cv2.distanceTransform(np.pad(best[1], 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(y), int(x), best[2]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def photo_run(args) -> list[dict]:
    corpus, row, seed, overrides, edges = args
    C.limit_threads(1)
    from dataclasses import replace

    from sss_studio.segmentation.embedding import EmbeddingModel
    from sss_studio.segmentation.pipeline import Segmenter, SegmenterParams
    from sss_studio.segmentation.seeds import Seed, seeded_layers

    img = cv2.cvtColor(cv2.imread(str(corpus / row["path"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    s = min(1.0, MAX_SIDE / max(img.shape[:2]))
    if s < 1:
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    photo = img.astype(np.float32) / 255.0
    base = SegmenterParams()
    params = replace(base, seed=seed, seeds=replace(base.seeds, **overrides))
    seg = Segmenter(params, embedding_model=EmbeddingModel(prefer_gpu=False))
    seg.set_image(photo)
    res = seg.run()
    out = []
    for truth in objects(corpus, row, photo.shape[:2]):
        alphas = res.alphas
        k = int(np.argmax([iou(a >= 0.5, truth) for a in alphas]))
        seeds: list = []
        hist, times = [iou(alphas[k] >= 0.5, truth)], []
        while len(seeds) < MAX_CLICKS and hist[-1] < 0.90:
            click = next_click(alphas[k] >= 0.5, truth)
            if click is None:
                break
            y, x, positive = click
            seeds.append((k, Seed(x + 0.5, y + 0.5, positive)))
            t0 = time.perf_counter()
            alphas = seeded_layers(res.seed_graph, photo, alphas, seeds, edges)
            times.append(time.perf_counter() - t0)
            hist.append(iou(alphas[k] >= 0.5, truth))
        noc = {t: next((i for i, v in enumerate(hist) if v >= t), MAX_CLICKS) for t in (0.85, 0.90)}
        out.append(dict(photo=row["path"], seed=seed, source=row["source"], area=float(truth.mean()),
                        iou0=hist[0], best=max(hist), noc85=noc[0.85], noc90=noc[0.90], times=times,
                        size=photo.shape[:2], working=res.working_size))
    return out


def summary(recs: list[dict]) -> dict:
    times = [t for r in recs for t in r["times"]]
    return {"objects": len(recs), "noc85": float(np.mean([r["noc85"] for r in recs])),
            "noc90": float(np.mean([r["noc90"] for r in recs])),
            "never90": float(np.mean([r["noc90"] >= MAX_CLICKS for r in recs])),
            "update_ms": float(1000 * np.median(times)) if times else 0.0,
            "iou0": float(np.mean([r["iou0"] for r in recs]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=pathlib.Path, default=PHOTOS)
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--skip", type=int, default=0,
                    help="leave out the first N photos of the pick (a held-out check of values tuned on them)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="run seeds (the grouping's)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    ap.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    ap.add_argument("--edges", action="store_true",
                    help="each click's layers with their changed edges refined (as the studio's final step)")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="SeedParams overrides, e.g. prior=1e-4 band_px=5 (for tuning)")
    a = ap.parse_args()
    overrides = {k: type(getattr(SeedParams(), k))(v) for k, v in (x.split("=", 1) for x in a.set)}
    rows = pick(a.corpus, a.skip + a.limit)[a.skip:]
    tasks = [(a.corpus, r, s, overrides, a.edges) for s in a.seeds for r in rows]
    with get_context("spawn").Pool(a.jobs) as pool:
        recs = [x for part in pool.imap(photo_run, tasks) for x in part]
    per_seed = {s: summary([r for r in recs if r["seed"] == s]) for s in a.seeds}
    total = summary(recs)
    lines = [f"| {s} | {v['objects']} | {v['iou0']:.3f} | {v['noc85']:.2f} | {v['noc90']:.2f} | "
             f"{100 * v['never90']:.0f} % | {v['update_ms']:.0f} |" for s, v in list(per_seed.items()) + [("all", total)]]
    for src in sorted({r["source"] for r in recs}):
        v = summary([r for r in recs if r["source"] == src])
        lines.append(f"| {src} | {v['objects']} | {v['iou0']:.3f} | {v['noc85']:.2f} | {v['noc90']:.2f} | "
                     f"{100 * v['never90']:.0f} % | {v['update_ms']:.0f} |")
    table = "\n".join(["| run seed / source | objects | start IoU | NoC@85 | NoC@90 | never 90 % | update ms (median) |",
                       "|---|---|---|---|---|---|---|", *lines])
    if not a.json or sys.stdout.isatty():
        print(f"{len(rows)} photos, {total['objects'] // max(len(a.seeds), 1)} objects, seeds {a.seeds}")
        print(table)
    if a.write:
        flag = " --edges" if a.edges else ""
        body = (f"## Clicks to a good layer (bench_clicks.py{flag})\n\n{datetime.date.today()}, {C.machine()}. "
                f"{len(rows)} photos of the development corpus taken in turn from each source (COCO panoptic "
                f"segments, BSDS500 segments (first annotator) and alpha-matte foregrounds of at least 1 % of "
                f"the photo: {total['objects'] // max(len(a.seeds), 1)} objects), at their own size up to "
                f"{MAX_SIDE} px; fast mode, bundled model, run seeds {', '.join(map(str, a.seeds))}. Start: the "
                f"automatic layer that overlaps the object most; a simulated click at the interior point of the "
                f"largest error region; NoC = clicks until IoU(α ≥ 0.5) reaches 0.85 / 0.90, capped at "
                f"{MAX_CLICKS}; update = one re-solve at the photo's size (all seeds applied"
                f"{', then the changed edges refined at that size' if a.edges else ''}).\n\n{table}\n")
        C.write_section(RESULTS, "bench_clicks_edges" if a.edges else "bench_clicks", body)
    if a.json:
        print(json.dumps({k: total[k] for k in ("objects", "noc85", "noc90", "never90", "update_ms")}))


if __name__ == "__main__":
    main()
