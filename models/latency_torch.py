"""Latency of the exported graph (student + upsampling + normalisation) in PyTorch on
a GPU, for machines where onnxruntime-gpu cannot run:

    python models/latency_torch.py CHECKPOINT.pt [--size 640x480]

The ONNX figure on CPU comes from evaluate_embedding.py; this one gives the
GPU's figure for the same network, batch 1, in float32 and in float16
(autocast), with cuDNN's autotuner on and the copy of both outputs back to the
host included, since the app needs them there.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import student as S


def _time(model, x, runs: int, half: bool) -> list[float]:
    times = []
    with torch.inference_mode(), torch.autocast(x.device.type, torch.float16, enabled=half):
        for k in range(runs + 20):   # the first calls pick cuDNN's kernels
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            emb, probs = model(x)
            emb.float().cpu(), probs.float().cpu()
            if k >= 20:
                times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--runs", type=int, default=100)
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    ck = torch.load(a.checkpoint, weights_only=False, map_location="cpu")
    net = S.StudentNet(S.StudentParams(**ck["student"]))
    net.load_state_dict(ck["net"])
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    model = S.ExportWrapper(net).eval().to(dev)
    x = torch.rand(1, 3, h, w, device=dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    for half in (False, True) if dev.type == "cuda" else (False,):
        t = np.array(_time(model, x, a.runs, half)) * 1e3
        print(f"{name}: {w}x{h} {'float16' if half else 'float32'} median {np.median(t):.1f} ms, "
              f"min {t.min():.1f} ms (torch {torch.__version__}, host copy included)", flush=True)


if __name__ == "__main__":
    main()
