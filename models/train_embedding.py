"""Train the student embedding by distillation + metric learning, then export it.

One command, seeded and resumable (checkpoints in .cache/train/, or .cache/train_gpu/):

    OMP_NUM_THREADS=1 python models/train_embedding.py     # "cpu" recipe, ~45 min on one core
    python models/train_embedding.py --recipe gpu          # the bundled model: 15 min on one H100

On a GPU machine without ../shared, first `python models/corpus_pack.py unpack DIR`
(see that file). The GPU run's checkpoint exports here with
``--recipe gpu --export-only``.

It converts the TFLite teachers (models/tflite_to_onnx.py) and caches their
targets (models/teacher_cache.py) if that was not done yet, trains, and writes
models/sss_embed.onnx. Re-running continues from the last checkpoint;
``--export-only`` exports the latest checkpoint as it is.

Losses, on a stride-4 grid of 224-px augmented crops (the teachers' pixels of one
photo share most of their direction, so both distillation terms look at the
within-crop structure only):
- feature distillation: a linear projector maps the student embedding onto the
  teachers' concatenated, per-teacher L2-normalised features; loss = the
  unexplained within-crop variance (1 - R²);
- relational distillation: the student's pairwise squared distances between
  sampled pixels, divided by their mean, match the teachers' (this is what the
  spectral pipeline consumes: distances between pixels, up to scale);
- class distillation: KL to each teacher's class distribution;
- metric learning (SegSort / N-pair style, supervised contrastive): pixels of
  one segment pulled together, of different segments pushed apart; segments
  are BSDS500 human segments, COCO panoptic segments, CamVid classes, and for
  other photos the teachers' joint argmax regions.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

import onnx_weights
import student as S
import teacher_cache

REPO = pathlib.Path(__file__).resolve().parents[1]
CKPT_DIR = REPO / ".cache" / "train"
ONNX_OUT = REPO / "models" / "sss_embed.onnx"


@dataclass(frozen=True)
class TrainParams:
    steps: int = 1800
    batch: int = 8
    crop: int = 224                 # pixels; the target grid is crop / 4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    scale_range: tuple = (0.7, 1.4)
    pixels_per_image: int = 384     # sampled for the relational and metric terms
    temperature: float = 0.1        # metric term
    w_feat: float = 1.0
    w_rel: float = 2.0
    w_cls: float = 0.25
    w_metric: float = 0.2
    # What the app's pipeline reads (see ``pipeline_losses``); 0 in the recipes that
    # made the earlier models.
    w_affinity: float = 0.0
    w_layout: float = 0.0
    checkpoint_every: int = 100
    seed: int = 0


# Two schedules, one per kind of machine. "cpu" fits the 2-hour budget of a 2-core CPU
# (41 min for 1,800 steps on one core); "gpu" is what made the bundled model: a 4× wider
# network, 4× larger batches, 2.5× more steps in its first phase (301 s on one H100).
RECIPES = {
    "cpu": dict(steps=1800, batch=8, lr=2e-3, width=1.0, decoder_channels=64),
    "gpu": dict(steps=4500, batch=32, lr=3e-3, width=2.0, decoder_channels=128,
                # A second phase (what the bundled model had): a fresh optimiser, warmed up
                # again, on a cosine schedule of 18,000 steps stopped at 13,200, where the
                # device time of that session ran out (ARI 0.539 → 0.547, NN 0.9797 → 0.9804; 610 s).
                then=[(18000, 13200)]),
    # Continue the bundled model on what the pipeline reads: its PCA-3 features and the
    # semantic affinity between neighbours (issue 19). Fits 2-hour CPU pieces: resumable,
    # BatchNorm frozen (the ONNX file holds it folded).
    "finetune": dict(steps=1500, batch=8, lr=1e-4, width=2.0, decoder_channels=128, warmup=50,
                     init="models/sss_embed.onnx", w_feat=0.0, w_affinity=4.0, w_layout=2.0,
                     scale_range=(0.7, 1.0)),
}


# ---- data ------------------------------------------------------------------
class CachedPhotos:
    def __init__(self, cache: pathlib.Path, split: str = "train"):
        index = json.loads((cache / "index.json").read_text())
        self.cache = cache
        self.entries = [e for e in index["entries"] if e["split"] == split]

    def __len__(self):
        return len(self.entries)

    def load(self, k: int) -> dict:
        with np.load(self.cache / f"{self.entries[k]['i']:04d}.npz") as z:
            return {key: z[key] for key in z.files}

    def tensors(self, k: int, device: torch.device) -> dict:
        """One photo as tensors: image H×W×3 uint8, maps (feat + logits) C×h×w float16,
        seg n×h×w int16 or absent."""
        d = self.load(k)
        out = dict(image=torch.from_numpy(d["image"]).to(device),
                   maps=torch.from_numpy(np.concatenate([d["feat"], d["logits"]], 2)).permute(2, 0, 1)
                   .contiguous().to(device))
        if "seg" in d:
            out["seg"] = torch.from_numpy(d["seg"].astype(np.int16)).to(device)
        return out


class Photos:
    """Training photos as tensors: all resident on the device (a GPU holds the whole
    3 GB corpus), or read from the cache one by one (CPU)."""

    def __init__(self, cached: CachedPhotos, device: torch.device, resident: bool):
        self.cached, self.device = cached, device
        self.items = [cached.tensors(k, device) for k in range(len(cached))] if resident else None

    def __len__(self):
        return len(self.cached)

    def __getitem__(self, k: int) -> dict:
        return self.items[k] if self.items is not None else self.cached.tensors(k, self.device)


def _photometric(img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Colour jitter on a 3×H×W [0,1] crop: the teachers' targets stay fixed, so the
    student learns to be invariant to it."""
    img = img * rng.uniform(0.75, 1.25) + rng.uniform(-0.1, 0.1)              # contrast, brightness
    grey = img.mean(0, keepdim=True)
    img = grey + (img - grey) * (0.0 if rng.random() < 0.05 else rng.uniform(0.6, 1.4))   # saturation
    img = img * torch.tensor(rng.uniform(0.9, 1.1, 3), dtype=img.dtype, device=img.device).view(3, 1, 1)  # white balance
    if rng.random() < 0.3:
        noise = torch.randn(img.shape, generator=torch.Generator().manual_seed(int(rng.integers(2**31))))
        img = img + noise.to(img.device) * 0.02
    return img.clamp(0, 1)


def make_sample(d: dict, p: TrainParams, rng: np.random.Generator):
    g = p.crop // 4
    img = d["image"].permute(2, 0, 1).float()[None] / 255
    maps = d["maps"].float()[None]
    gh, gw = maps.shape[-2:]
    s = rng.uniform(*p.scale_range)
    s = max(s, (g + 1) / min(gh, gw))
    nh, nw = max(g, round(gh * s)), max(g, round(gw * s))
    img = F.interpolate(img, size=(nh * 4, nw * 4), mode="bilinear", align_corners=False, antialias=s < 1)
    maps = F.interpolate(maps, size=(nh, nw), mode="bilinear", align_corners=False)
    if "seg" in d:
        seg = d["seg"][int(rng.integers(len(d["seg"])))][None, None].float()
        seg = F.interpolate(seg, size=(nh, nw), mode="nearest")[0, 0].long()
    else:   # teachers' joint argmax regions
        lg = maps[0, -len(S.CLASS_NAMES):]
        seg = lg[: S.N_ADE].argmax(0) * len(S.PASCAL_CLASSES) + lg[S.N_ADE:].argmax(0) + 1
    y, x = int(rng.integers(nh - g + 1)), int(rng.integers(nw - g + 1))
    img = img[0, :, 4 * y: 4 * (y + g), 4 * x: 4 * (x + g)]
    maps = maps[0, :, y: y + g, x: x + g]
    seg = seg[y: y + g, x: x + g]
    if rng.random() < 0.5:
        img, maps, seg = img.flip(-1), maps.flip(-1), seg.flip(-1)
    return _photometric(img, rng), maps, seg


def make_batch(data: Photos, p: TrainParams, step: int):
    rng = np.random.default_rng([p.seed, step])   # batch depends only on (seed, step): resumable
    items = [make_sample(data[int(k)], p, rng) for k in rng.choice(len(data), p.batch, replace=False)]
    imgs, maps, segs = (torch.stack(t) for t in zip(*items))
    return imgs, maps, segs, rng


# ---- losses ----------------------------------------------------------------
def _centred_sq_dist(x: torch.Tensor) -> torch.Tensor:
    """B×D×M points → B×M×M squared distances divided by their per-image mean.

    Within one photo the teachers' pixels lie in a narrow cone (mean cosine 0.9),
    so raw cosines are nearly constant; what the pipeline (and k-means) sees is
    the relative geometry, which this scale-free form keeps.
    """
    sq = x.square().sum(1)
    d = (sq[:, :, None] + sq[:, None, :] - 2 * x.transpose(1, 2) @ x).clamp_min(0)
    return d / d.mean(dim=(1, 2), keepdim=True).clamp_min(1e-8)


def losses(net, projector, imgs, maps, segs, p: TrainParams, rng) -> dict:
    n_feat = maps.shape[1] - len(S.CLASS_NAMES)
    t = F.normalize(maps[:, :n_feat], dim=1)
    t_logits = maps[:, n_feat:]
    with torch.autocast(imgs.device.type, dtype=torch.bfloat16, enabled=imgs.device.type == "cuda"):
        raw, logits = net(imgs)
    raw, logits = raw.float(), logits.float()
    e = F.normalize(raw, dim=1)
    out = {}
    # Feature distillation as unexplained within-crop variance (1 - R²): the
    # constant part of the teachers' features carries no segmentation.
    tc = t - t.mean(dim=(2, 3), keepdim=True)
    pe = projector(e)
    resid = (pe - pe.mean(dim=(2, 3), keepdim=True) - tc).square().sum(1).mean(dim=(1, 2))
    spread = tc.square().sum(1).mean(dim=(1, 2)).clamp_min(1e-6)
    out["feat"] = (resid / spread).mean()

    kl = 0
    for sl in (slice(0, S.N_ADE), slice(S.N_ADE, None)):
        pt = t_logits[:, sl].float().softmax(1)
        kl = kl + (pt * (pt.clamp_min(1e-8).log() - logits[:, sl].log_softmax(1))).sum(1).mean()
    out["cls"] = kl

    B, D = e.shape[:2]
    n = e.shape[2] * e.shape[3]
    idx = torch.from_numpy(np.stack([rng.choice(n, p.pixels_per_image, replace=False) for _ in range(B)])).to(e.device)
    es = torch.gather(e.flatten(2), 2, idx[:, None].expand(B, D, -1))            # B×D×M
    ts = torch.gather(t.flatten(2), 2, idx[:, None].expand(B, t.shape[1], -1))
    ls = torch.gather(segs.flatten(1), 1, idx)                                   # B×M
    # Relational distillation: the student's pairwise distances match the teachers', up to scale.
    out["rel"] = (_centred_sq_dist(es) - _centred_sq_dist(ts)).square().mean()

    # Supervised contrastive over the sampled pixels of each image (0 = unlabelled).
    ss = es.transpose(1, 2) @ es                                                 # B×M×M cosines
    eye = torch.eye(ls.shape[1], dtype=torch.bool, device=ls.device)
    valid = (ls[:, :, None] > 0) & (ls[:, None, :] > 0) & ~eye
    pos = (ls[:, :, None] == ls[:, None, :]) & valid
    logit = (ss / p.temperature).masked_fill(~valid, -1e9)
    log_prob = logit - torch.logsumexp(logit, dim=2, keepdim=True)
    npos = pos.sum(2)
    has = npos > 0
    mean_pos = (log_prob * pos).sum(2) / npos.clamp_min(1)
    out["metric"] = -(mean_pos[has]).mean() if has.any() else ss.new_zeros(())
    total = p.w_feat * out["feat"] + p.w_rel * out["rel"] + p.w_cls * out["cls"] + p.w_metric * out["metric"]
    if p.w_affinity or p.w_layout:
        out.update(pipeline_losses(e, t, rng, p))
        total = total + p.w_affinity * out["affinity"] + p.w_layout * out["layout"]
    out["total"] = total
    return out


# The app reduces an embedding to 3-D (PCA over the photo, then min-max per channel) and
# builds its semantic affinity between neighbouring superpixels as erf(20·(0.15 − d)) of
# their distance there (ALGORITHM.md §1, §3b; k-means in that 3-D space starts the layers).
AFF_SCALE, AFF_CUT = 20.0, 0.15


def pca3_minmax(x: torch.Tensor) -> torch.Tensor:
    """B×D×M points → B×M×3: centred, on their top three principal axes, each axis
    min-max normalised, as the app's feature preprocessing does. The axes are taken as
    constants (no gradient through the eigen-decomposition, which is unstable where
    eigenvalues meet); gradients flow through the projection and the min-max."""
    xc = x - x.mean(2, keepdim=True)
    with torch.no_grad():
        cov = xc @ xc.transpose(1, 2) / x.shape[2]
        _, vecs = torch.linalg.eigh(cov.double())
        axes = vecs[:, :, -3:].to(x.dtype)                                   # B×D×3
    p = xc.transpose(1, 2) @ axes                                            # B×M×3
    lo, hi = p.amin(1, keepdim=True), p.amax(1, keepdim=True)
    return (p - lo) / (hi - lo).clamp_min(1e-6)


def pipeline_losses(e: torch.Tensor, t: torch.Tensor, rng: np.random.Generator, p: TrainParams) -> dict:
    """Student vs teachers in the space the pipeline works in.

    - affinity: over pixel pairs a few grid cells apart (superpixel neighbours at the
      app's working size), the semantic affinity erf(20·(0.15 − d)) of the student's
      PCA-3 features matches the teachers' (squared error): which neighbours attract and
      which repel is what groups the layers;
    - layout: over sampled pixels, the distances between PCA-3 features match (what the
      k-means start reads).
    """
    B, D, gh, gw = e.shape
    ps, pt = pca3_minmax(e.flatten(2)), pca3_minmax(t.flatten(2))
    ps, pt = ps.view(B, gh, gw, 3), pt.view(B, gh, gw, 3)
    dy, dx = (int(v) for v in rng.integers(-4, 5, 2))
    if dy == 0 and dx == 0:
        dx = 2
    ys, xs = slice(max(0, -dy), gh - max(0, dy)), slice(max(0, -dx), gw - max(0, dx))
    ys2, xs2 = slice(max(0, dy), gh + min(0, dy)), slice(max(0, dx), gw + min(0, dx))

    def aff(q):
        d = (q[:, ys, xs] - q[:, ys2, xs2]).norm(dim=-1)
        return torch.erf(AFF_SCALE * (AFF_CUT - d))

    out = {"affinity": (aff(ps) - aff(pt)).square().mean()}
    m = p.pixels_per_image
    idx = torch.from_numpy(np.stack([rng.choice(gh * gw, m, replace=False) for _ in range(B)])).to(e.device)
    qs = torch.gather(ps.view(B, -1, 3), 1, idx[:, :, None].expand(B, m, 3))
    qt = torch.gather(pt.view(B, -1, 3), 1, idx[:, :, None].expand(B, m, 3))
    out["layout"] = (torch.cdist(qs, qs) - torch.cdist(qt, qt)).square().mean()
    return out


# ---- export ----------------------------------------------------------------
def export_onnx(net: S.StudentNet, sp: S.StudentParams, path: pathlib.Path, info: dict) -> None:
    import onnx
    net.eval()
    wrapper = S.ExportWrapper(net)
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(
            wrapper, (torch.rand(1, 3, 256, 320),), str(tmp), input_names=["image"],
            output_names=["embedding", "class_probs"], opset_version=17, dynamo=False,
            dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}, "embedding": {0: "N", 2: "H", 3: "W"},
                          "class_probs": {0: "N", 2: "h", 3: "w"}})
    model = onnx.load(str(tmp))
    # The exporter names the channel dim of the normalised embedding symbolically: pin it.
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if out.name == "embedding":
            dims[1].ClearField("dim_param")
            dims[1].dim_value = sp.embedding_dim
    meta = {
        "class_names": json.dumps(S.CLASS_NAMES),
        "class_groups": json.dumps({"ade20k": [0, S.N_ADE], "pascal": [S.N_ADE, len(S.CLASS_NAMES)]}),
        "embedding_dim": str(sp.embedding_dim),
        "class_stride": "4",
        "input": "image: float32 N×3×H×W, RGB in [0,1], any H and W",
        "outputs": "embedding: N×D×H×W unit-norm; class_probs: N×53×ceil(H/4)×ceil(W/4), softmax per group",
        "sss_model_contract": "1",
        "training": json.dumps(info),
    }
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.producer_name = "sss_studio.models.train_embedding"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    tmp.unlink()
    print(f"exported {path} ({path.stat().st_size / 1e6:.2f} MB)", flush=True)


# ---- main ------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description="distil the teachers into the student and export it")
    ap.add_argument("--recipe", choices=sorted(RECIPES), help="schedule and network size "
                    "(default: gpu where CUDA is available, else cpu); the options below override it")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--export-every", type=int, default=400, help="also export every N steps (0: only at the end)")
    ap.add_argument("--out", type=pathlib.Path, help=f"default: {ONNX_OUT.relative_to(REPO)}; for a recipe that "
                    "starts from a model, candidate.onnx beside its checkpoints (the bundled model is replaced "
                    "only by hand, after the downstream table)")
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda where there is one)")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--width", type=float)
    ap.add_argument("--decoder-channels", type=int)
    ap.add_argument("--checkpoints", type=pathlib.Path, help="default: .cache/train (cpu) or .cache/train_gpu (gpu)")
    ap.add_argument("--no-export", action="store_true", help="checkpoints only (export elsewhere)")
    ap.add_argument("--minutes", type=float, default=0,
                    help="fit --steps to this much training time, from the speed of the first 40 steps "
                         "(the steps chosen are recorded; rerun with --steps N to repeat it)")
    ap.add_argument("--weights-to", type=pathlib.Path, help="also save net + projector (no optimiser) here")
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    recipe = dict(RECIPES[args.recipe or ("gpu" if device.type == "cuda" else "cpu")])
    for key in recipe:
        if getattr(args, key, None) is not None:
            recipe[key] = getattr(args, key)
    # Phases: (cosine schedule length, step to stop at); --steps asks for one phase only.
    phases = [(recipe["steps"], recipe["steps"])] + ([] if args.steps else list(recipe.get("then", [])))
    fields = set(TrainParams.__dataclass_fields__)
    p = TrainParams(**{k: v for k, v in recipe.items() if k in fields})
    sp = S.StudentParams(width=recipe["width"], decoder_channels=recipe["decoder_channels"])
    name = args.recipe or ("gpu" if device.type == "cuda" else "cpu")
    ckpt_dir = args.checkpoints or (CKPT_DIR if name == "cpu" else CKPT_DIR.with_name(f"train_{name}"))
    ckpt_path = ckpt_dir / "last.pt"
    out_path = args.out or (ckpt_dir / "candidate.onnx" if "init" in recipe else ONNX_OUT)
    if ckpt_path.exists():   # a checkpoint fixes the architecture and schedule it was trained with
        ck = torch.load(ckpt_path, weights_only=False, map_location="cpu")
        sp = S.StudentParams(**ck.get("student", asdict(sp)))
        p = TrainParams(**{**ck["params"], "scale_range": tuple(ck["params"]["scale_range"]), "steps": recipe["steps"]})
    if device.type == "cpu":
        torch.set_num_threads(1)
    else:
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(p.seed)

    if not (teacher_cache.TEACHER_DIR / "pascal.onnx").exists():
        import tflite_to_onnx
        tflite_to_onnx.convert_all(tflite_to_onnx.SRC, teacher_cache.TEACHER_DIR)
    if not (teacher_cache.CACHE / "index.json").exists():
        teacher_cache.build()

    cached = CachedPhotos(teacher_cache.CACHE, "train")
    net = S.StudentNet(sp)
    frozen_bn = "init" in recipe
    if frozen_bn and not ckpt_path.exists():   # start from an exported model
        net, sp = onnx_weights.load_student(REPO / recipe["init"])
    n_feat = teacher_cache.CacheParams().pca_dims * 2
    projector = torch.nn.Conv2d(sp.embedding_dim, n_feat, 1)
    net.to(device)
    projector.to(device)
    params = list(net.parameters()) + list(projector.parameters())
    opt = torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay)
    step, elapsed, warm_from, phase = 0, 0.0, 0, 0
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if ckpt_path.exists():
        net.load_state_dict(ck["net"])
        projector.load_state_dict(ck["projector"])
        step, elapsed = ck["step"], ck.get("elapsed", 0.0)
        phase = ck.get("phase", next((i for i, (_, stop) in enumerate(phases) if stop > step), len(phases) - 1))
        if "opt" in ck and phases[min(phase, len(phases) - 1)][1] > step:
            opt.load_state_dict(ck["opt"])
        else:   # a weights-only copy or a new phase restarts the optimiser: warm it up again
            warm_from = step
        print(f"resumed at step {step}", flush=True)

    def info():
        return dict(steps=step, train_photos=len(cached), seconds=round(elapsed), device=device_name,
                    params=asdict(p), student=asdict(sp))

    device_name = ck.get("device", "cpu") if ckpt_path.exists() else (
        torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu")

    def export():
        export_onnx(net.to("cpu"), sp, out_path, info())
        net.to(device)

    if args.export_only:
        export()
        return

    def save():
        torch.save(dict(net=net.state_dict(), projector=projector.state_dict(), opt=opt.state_dict(),
                        step=step, elapsed=elapsed, params=asdict(p), student=asdict(sp),
                        device=device_name, phase=phase), ckpt_dir / "tmp.pt")
        (ckpt_dir / "tmp.pt").replace(ckpt_path)

    t_load = time.time()
    data = Photos(cached, device, resident=device.type == "cuda")
    print(f"training on {len(data)} photos ({time.time() - t_load:.0f} s to load), "
          f"{S.count_parameters(net)} parameters, {device_name}", flush=True)
    def train_mode():
        net.train()
        if frozen_bn:
            onnx_weights.freeze_batchnorm(net)

    train_mode()
    running: dict = {}
    t_start, step0 = time.time(), step
    while True:
        sched, stop = phases[min(phase, len(phases) - 1)]
        p = TrainParams(**{**asdict(p), "steps": sched})
        while step < stop:
            if args.minutes and step == step0 + 40:
                per_step = (time.time() - t_start) / 40
                fitted = step + int((args.minutes * 60 - (time.time() - t_start)) / per_step)
                stop = max(step + 1, min(stop, fitted))
                p = TrainParams(**{**asdict(p), "steps": stop})
                print(f"{per_step:.3f} s/step: training to step {stop}", flush=True)
            t0 = time.time()
            lr = p.lr * min(1.0, (step + 1 - warm_from) / p.warmup) * 0.5 * (1 + math.cos(math.pi * step / p.steps))
            for g in opt.param_groups:
                g["lr"] = lr
            imgs, maps, segs, rng = make_batch(data, p, step)
            out = losses(net, projector, imgs, maps, segs, p, rng)
            opt.zero_grad(set_to_none=True)
            out["total"].backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            step += 1
            elapsed += time.time() - t0
            for k, v in out.items():
                running[k] = running.get(k, 0.0) + float(v.detach())
            if step % 25 == 0:
                print(f"step {step} lr {lr:.2e} " + " ".join(f"{k} {v / 25:.4f}" for k, v in running.items())
                      + f" ({elapsed / step:.2f} s/step)", flush=True)
                running = {}
            if step % p.checkpoint_every == 0 or step == stop:
                save()
            if args.export_every and not args.no_export and step % args.export_every == 0 and step < stop:
                export()
                train_mode()
        if phase + 1 >= len(phases):
            break
        phase, warm_from = phase + 1, step
        opt = torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay)
        print(f"phase {phase + 1}: fresh optimiser, schedule of {phases[phase][0]} steps to step {phases[phase][1]}",
              flush=True)
    save()
    if args.weights_to:
        torch.save(dict(net=net.state_dict(), projector=projector.state_dict(), step=step, elapsed=elapsed,
                        params=asdict(p), student=asdict(sp), device=device_name), args.weights_to)
    if not args.no_export:
        export()


if __name__ == "__main__":
    main()
