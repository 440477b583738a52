"""Load an exported student (ONNX) back into ``StudentNet`` to train it further.

The export folds each BatchNorm into the convolution before it, so the ONNX file holds
one weight and one bias per convolution. Loading maps the graph's Conv nodes, in graph
order, onto the network's convolutions in the order its forward pass runs them; a
convolution followed by BatchNorm gets the folded weight (rescaled per output channel to
a He-initialisation size, the scale moved into the BatchNorm), and its BatchNorm keeps
running mean 0 and variance 1 − ε. Training
from there must keep BatchNorm in eval mode (``freeze_batchnorm``): its statistics are
folded away. ``load_student`` checks the loaded network against onnxruntime.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import torch
from torch import nn

import student as S


def _conv_order(net: nn.Module) -> list[nn.Conv2d]:
    """The network's convolutions in the order a forward pass runs them."""
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m))
             for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net.eval()(torch.rand(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    return order


def _bn_after(net: nn.Module) -> dict[int, nn.BatchNorm2d]:
    """Conv → the BatchNorm that follows it in the same Sequential."""
    out = {}
    for m in net.modules():
        if isinstance(m, nn.Sequential):
            kids = list(m)
            for a, b in zip(kids, kids[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    out[id(a)] = b
    return out


def load_student(path: pathlib.Path, check: bool = True) -> tuple[S.StudentNet, S.StudentParams]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    sp = S.StudentParams(**json.loads(meta["training"])["student"])
    net = S.StudentNet(sp)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    order = _conv_order(net)
    if len(convs) != len(order):
        raise ValueError(f"{path.name}: {len(convs)} convolutions in the graph, {len(order)} in the network")
    bns = _bn_after(net)
    with torch.no_grad():
        for node, conv in zip(convs, order):
            w, b = inits[node.input[1]], inits[node.input[2]]
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ValueError(f"{path.name}: {node.name} is {w.shape}, the network expects {tuple(conv.weight.shape)}")
            bn = bns.get(id(conv))
            if bn is None:
                conv.weight.copy_(torch.from_numpy(np.array(w)))
                conv.bias.copy_(torch.from_numpy(np.array(b)))
            else:
                # Give the convolution back a He-initialisation scale per output channel and
                # BatchNorm's scale the rest: the folded weights differ in size by orders of
                # magnitude, and Adam's steps (about lr per weight) would wreck the small ones.
                w = torch.from_numpy(np.array(w))
                fan_in = w[0].numel()
                rms = w.flatten(1).square().mean(1).sqrt().clamp_min(1e-12)
                scale = rms / (2.0 / fan_in) ** 0.5
                conv.weight.copy_(w / scale[:, None, None, None])
                bn.weight.copy_(scale)
                bn.bias.copy_(torch.from_numpy(np.array(b)))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
    if check:
        _check(net, path)
    return net, sp


def freeze_batchnorm(net: nn.Module) -> None:
    """Keep every BatchNorm on its stored statistics (call after each ``net.train()``)."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def _check(net: S.StudentNet, path: pathlib.Path) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(0).random((1, 3, 96, 128), dtype=np.float32)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["embedding"], {"image": x})[0]
    with torch.no_grad():
        got = S.ExportWrapper(net.eval())(torch.from_numpy(x))[0].numpy()
    err = float(np.abs(got - ref).max())
    if err > 1e-3:
        raise ValueError(f"{path.name}: the loaded network differs from the file by {err:.2g}")
