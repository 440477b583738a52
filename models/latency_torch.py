"""Latency of the exported graph (student + upsampling + normalisation) in PyTorch on
a GPU, for machines where onnxruntime-gpu is not installed:

    python models/latency_torch.py CHECKPOINT.pt [--size 640x480]

The ONNX figure on CPU comes from evaluate_embedding.py; this one gives the
GPU's order of magnitude for the same network (float32, batch 1).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import student as S


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--runs", type=int, default=50)
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    ck = torch.load(a.checkpoint, weights_only=False, map_location="cpu")
    net = S.StudentNet(S.StudentParams(**ck["student"]))
    net.load_state_dict(ck["net"])
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = S.ExportWrapper(net).eval().to(dev)
    x = torch.rand(1, 3, h, w, device=dev)
    times = []
    with torch.no_grad():
        for k in range(a.runs + 5):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            emb, probs = model(x)
            emb.cpu(), probs.cpu()   # the app needs the result on the host
            if k >= 5:
                times.append(time.perf_counter() - t)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"{name}: {w}x{h} median {np.median(times) * 1e3:.1f} ms, min {np.min(times) * 1e3:.1f} ms "
          f"(torch {torch.__version__}, float32, host copy included)")


if __name__ == "__main__":
    main()
