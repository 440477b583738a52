"""The app's layers against the truth, one configuration against another (issue 22's
"quality unchanged" check for a faster schedule, and any other preset change).

Runs the fast mode as the app does (bundled model, each photo at its own size, the
working size and the edges stage in play) with the defaults and with each candidate
(``--candidate NAME key=value ...``, dotted keys into SegmenterParams, e.g.
``eigen.count=60 working_pixels=40000``), over several run seeds, and scores:

* alpha-matte photos: SAD (thousands) of the best subset of layers against the true
  matte, soft and hardened, and in the transition band (bench_truth.soft_scores);
* BSDS500 and COCO panoptic photos: covering of the human / panoptic partitions by the
  hard layers (bench_truth.covering);
* stability: matched IoU of the hard layers between two run seeds of the same photo;
* time: median seconds per run (one thread per run; runs side by side).

Each figure is the mean over photos, given as the mean over seeds (lowest–highest).

    python benchmarks/bench_quality.py --candidate k60 eigen.count=60 --jobs 2
    python benchmarks/bench_quality.py --corpus DIR --limit 4 --candidate k60 eigen.count=60 --json
"""

from __future__ import annotations

import argparse
import csv
import datetime
import itertools
import json
import pathlib
import sys
import time
from dataclasses import replace
from multiprocessing import get_context

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _common as C  # noqa: E402  (single-threaded BLAS first)
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from bench_truth import covering, soft_scores  # noqa: E402

PHOTOS = C.REPO.parent / "shared" / "photos"
RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"
SOURCES = ("alphamatting_com", "bsds500", "coco128")


def pick(corpus: pathlib.Path, limit: int, skip: int = 0, mattes: bool = True) -> list[dict]:
    """Every alpha-matte photo (unless ``mattes`` is off), then ``limit`` photos each of
    BSDS500 (validation first) and COCO panoptic, after the first ``skip`` of each."""
    rows = list(csv.DictReader(open(corpus / "manifest.csv")))
    out = []
    for src in SOURCES:
        group = [r for r in rows if r["source"] == src and any(
            t in r["gt_path"] for t in ("_alpha.png", "_seg1.png", "_pan.png"))]
        group.sort(key=lambda r: (not r["path"].split("/")[-1].startswith("val_"), r["path"]))
        if src == "alphamatting_com":
            out += group if mattes else []
        else:
            out += group[skip:skip + limit]
    return out


def truth(corpus: pathlib.Path, row: dict) -> tuple[str, np.ndarray]:
    gts = [corpus / p for p in row["gt_path"].split(";") if p]
    alpha = [p for p in gts if p.name.endswith("_alpha.png")]
    if alpha:
        return "alpha", cv2.imread(str(alpha[0]), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    pan = [p for p in gts if p.name.endswith("_pan.png")]
    if pan:
        rgb = cv2.imread(str(pan[0]), cv2.IMREAD_COLOR).astype(np.int64)   # BGR: any injective id will do
        return "segments", (rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2])[None]
    return "segments", np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.int64)
                                 for p in gts if "_seg" in p.name])


def params_for(overrides: dict[str, str], seed: int):
    from sss_studio.segmentation.params import SegmenterParams

    def put(obj, keys: list[str], value: str):
        cur = getattr(obj, keys[0])
        if len(keys) > 1:
            return replace(obj, **{keys[0]: put(cur, keys[1:], value)})
        kind = type(cur)
        v = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
        return replace(obj, **{keys[0]: v})

    p = SegmenterParams(seed=seed)
    for k, v in overrides.items():
        p = put(p, k.split("."), v)
    return p


def one_run(args) -> dict:
    corpus, row, config, overrides, seed = args
    C.limit_threads(1)
    from sss_studio.segmentation.embedding import EmbeddingModel
    from sss_studio.segmentation.pipeline import Segmenter

    img = cv2.cvtColor(cv2.imread(str(corpus / row["path"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    seg = Segmenter(params_for(overrides, seed), embedding_model=EmbeddingModel(prefer_gpu=False), threads=1)
    seg.set_image(img.astype(np.float32) / 255.0)
    t0 = time.perf_counter()
    res = seg.run()
    secs = time.perf_counter() - t0
    kind, t = truth(corpus, row)
    score = soft_scores(res.alphas, t) if kind == "alpha" else covering(res.alphas, t)
    hard = res.alphas.argmax(axis=0).astype(np.uint8)
    return dict(photo=row["path"], source=row["source"], config=config, seed=seed, seconds=secs,
                eigen_s=res.timings.get("eigenvectors", 0.0), score=score, hard=hard, k=res.alphas.shape[0])


def hard_iou(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Mean IoU of the hard layers of two runs, matched by the Hungarian method."""
    from scipy.optimize import linear_sum_assignment

    inter = np.zeros((k, k))
    np.add.at(inter, (a.ravel(), b.ravel()), 1)
    sa, sb = np.bincount(a.ravel(), minlength=k), np.bincount(b.ravel(), minlength=k)
    iou = inter / np.maximum(sa[:, None] + sb[None, :] - inter, 1)
    r, c = linear_sum_assignment(-iou)
    return float(iou[r, c].mean())


def summarise(runs: list[dict], seeds: list[int]) -> dict:
    def per_seed(fn) -> list[float]:
        return [float(np.mean([fn(r) for r in runs if r["seed"] == s and fn(r) is not None] or [np.nan]))
                for s in seeds]

    alpha = lambda m: (lambda r: r["score"][m] if "soft" in r["score"] else None)  # noqa: E731
    cover = lambda src: (lambda r: r["score"]["covering"] if r["source"] == src else None)  # noqa: E731
    out = {"soft": per_seed(alpha("soft")), "hard": per_seed(alpha("hard")), "band": per_seed(alpha("band")),
           "wins": [sum(r["score"]["soft"] < r["score"]["hard"] for r in runs if r["seed"] == s and "soft" in r["score"])
                    for s in seeds],
           "bsds": per_seed(cover("bsds500")), "coco": per_seed(cover("coco128"))}
    by_photo: dict[str, dict[int, dict]] = {}
    for r in runs:
        by_photo.setdefault(r["photo"], {})[r["seed"]] = r
    out["stability"] = [float(np.mean([hard_iou(v[a]["hard"], v[b]["hard"], v[a]["k"]) for v in by_photo.values()
                                       if a in v and b in v])) for a, b in itertools.combinations(seeds, 2)]
    out["seconds"] = float(np.median([r["seconds"] for r in runs]))
    out["eigen_s"] = float(np.median([r["eigen_s"] for r in runs]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=pathlib.Path, default=PHOTOS)
    ap.add_argument("--limit", type=int, default=8, help="photos each of BSDS500 and COCO (all mattes are used)")
    ap.add_argument("--skip", type=int, default=0, help="leave out the first N of BSDS500 and of COCO (a held-out check)")
    ap.add_argument("--no-mattes", action="store_true", help="leave out the alpha-matte photos")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--candidate", nargs="+", action="append", default=[], metavar=("NAME", "KEY=VALUE"),
                    help="a configuration to compare with the defaults (repeatable)")
    ap.add_argument("--no-defaults", action="store_true", help="skip the default configuration")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object per configuration")
    ap.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    a = ap.parse_args()
    if not (a.corpus / "manifest.csv").exists():
        raise SystemExit(f"no photo corpus at {a.corpus} (--corpus): this benchmark needs photos with ground truth")
    configs = ([] if a.no_defaults else [("defaults", {})]) + [
        (c[0], dict(x.split("=", 1) for x in c[1:])) for c in a.candidate]
    rows = pick(a.corpus, a.limit, a.skip, not a.no_mattes)
    tasks = [(a.corpus, r, name, ov, s) for name, ov in configs for s in a.seeds for r in rows]
    with get_context("spawn").Pool(a.jobs, maxtasksperchild=4) as pool:
        runs = list(pool.imap_unordered(one_run, tasks))
    results = {name: summarise([r for r in runs if r["config"] == name], a.seeds) for name, _ in configs}

    def cell(v: list[float], fmt: str) -> str:
        return f"{np.mean(v):{fmt}} ({min(v):{fmt}}–{max(v):{fmt}})"

    n_alpha = sum(r["source"] == "alphamatting_com" for r in rows)
    lines = []
    for name, ov in configs:
        s = results[name]
        what = " ".join(f"{k}={v}" for k, v in ov.items()) or "the preset"
        lines.append(f"| {name} ({what}) | {cell(s['soft'], '.2f')} | {cell(s['hard'], '.2f')} | "
                     f"{min(s['wins'])}–{max(s['wins'])} of {n_alpha} | {cell(s['band'], '.2f')} | "
                     f"{cell(s['bsds'], '.3f')} | {cell(s['coco'], '.3f')} | {cell(s['stability'], '.3f')} | "
                     f"{s['seconds']:.1f} | {s['eigen_s']:.2f} |")
    table = "\n".join([
        "| configuration | soft SAD | hard SAD | soft < hard | band SAD | BSDS covering | COCO covering | "
        "seed-to-seed IoU | s per run | eigenvectors s |",
        "|---|---|---|---|---|---|---|---|---|---|", *lines])
    counts = {src: sum(r["source"] == src for r in rows) for src in SOURCES}
    head = (f"{datetime.date.today()}, {C.machine()}. Fast mode as the app runs it (bundled model, photos at "
            f"their own size), {counts['alphamatting_com']} alpha-matte, {counts['bsds500']} BSDS500 and "
            f"{counts['coco128']} COCO panoptic photos, run seeds {', '.join(map(str, a.seeds))}; each figure "
            "is the mean over photos as mean (lowest–highest) over seeds (seed-to-seed IoU: over seed pairs). "
            "SAD in thousands (lower is better), covering and IoU higher is better; one thread per run, "
            f"{a.jobs} runs side by side.")
    print(head + "\n\n" + table, file=sys.stderr if a.json else sys.stdout)
    if a.write:
        C.write_section(RESULTS, "bench_quality",
                        "## The app's layers against the truth, per configuration (bench_quality.py)\n\n"
                        + head + "\n\n" + table + "\n")
    if a.json:
        print(json.dumps({name: {k: (float(np.mean(v)) if isinstance(v, list) else v) for k, v in s.items()}
                          for name, s in results.items()}))


if __name__ == "__main__":
    main()
