"""The student: a small fully-convolutional encoder–decoder (training-time, PyTorch).

Encoder: MobileNetV2-style inverted residual blocks down to stride 16, the
last ones dilated for context, plus a global-pooling branch (as DeepLab's
image pooling: scene context for the class head). Decoder: two FPN/U-Net
style steps back to stride 4, each adding a projected skip connection.
Heads at stride 4: a D-dim embedding (unit-normalised after upsampling, in
the exported graph) and 53 class logits (ADE20K-32 then PASCAL-21).

Any input size works: every upsampling takes its target size from the skip
tensor, never from a constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ADE20K_CLASSES = [
    "other", "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair",
]
PASCAL_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]
CLASS_NAMES = [f"ade20k:{c}" for c in ADE20K_CLASSES] + [f"pascal:{c}" for c in PASCAL_CLASSES]
N_ADE = len(ADE20K_CLASSES)

# Input normalisation folded into the graph: RGB in [0,1] -> roughly zero-mean, unit-range.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class StudentParams:
    embedding_dim: int = 32
    n_classes: int = len(CLASS_NAMES)
    width: float = 1.0          # multiplies every channel count
    decoder_channels: int = 64


def _c(n: int, width: float) -> int:
    return max(8, int(round(n * width / 8)) * 8)


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin, cout, k=3, stride=1, dilation=1, groups=1, relu=True):
        pad = dilation * (k - 1) // 2
        layers = [nn.Conv2d(cin, cout, k, stride, pad, dilation, groups, bias=False), nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride=1, expand=4, dilation=1):
        super().__init__()
        mid = cin * expand
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            ConvBNReLU(cin, mid, 1),
            ConvBNReLU(mid, mid, 3, stride, dilation, groups=mid),
            ConvBNReLU(mid, cout, 1, relu=False),
        )

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class StudentNet(nn.Module):
    def __init__(self, p: StudentParams = StudentParams()):
        super().__init__()
        w = p.width
        c2, c4, c8, c16 = _c(16, w), _c(24, w), _c(40, w), _c(96, w)
        dc = p.decoder_channels
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))
        self.stem = ConvBNReLU(3, c2, 3, 2)                                    # /2
        self.s4 = nn.Sequential(InvertedResidual(c2, c4, 2, 3), InvertedResidual(c4, c4, 1, 3))   # /4
        self.s8 = nn.Sequential(InvertedResidual(c4, c8, 2), InvertedResidual(c8, c8),
                                InvertedResidual(c8, c8))                       # /8
        self.s16 = nn.Sequential(InvertedResidual(c8, c16, 2), InvertedResidual(c16, c16),
                                 InvertedResidual(c16, c16, dilation=2), InvertedResidual(c16, c16, dilation=4),
                                 InvertedResidual(c16, c16, dilation=8))        # /16, wide receptive field
        self.pool_proj = nn.Sequential(nn.Conv2d(c16, c16, 1), nn.ReLU(inplace=True))
        self.lat16 = ConvBNReLU(c16, dc, 1)
        self.lat8 = ConvBNReLU(c8, dc, 1)
        self.lat4 = ConvBNReLU(c4, dc, 1)
        self.fuse8 = InvertedResidual(dc, dc)
        self.fuse4 = nn.Sequential(InvertedResidual(dc, dc), ConvBNReLU(dc, dc, 3))
        self.embed_head = nn.Conv2d(dc, p.embedding_dim, 1)
        self.class_head = nn.Sequential(ConvBNReLU(dc, dc, 3), nn.Conv2d(dc, p.n_classes, 1))

    @staticmethod
    def _up(x, ref):
        return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor):
        """image: N×3×H×W RGB in [0,1] → (raw embedding, class logits), both at stride 4."""
        x = (image - self.mean) / self.std
        f2 = self.stem(x)
        f4 = self.s4(f2)
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        f16 = f16 + self.pool_proj(f16.mean(dim=(2, 3), keepdim=True))
        d8 = self.fuse8(self._up(self.lat16(f16), f8) + self.lat8(f8))
        d4 = self.fuse4(self._up(d8, f4) + self.lat4(f4))
        return self.embed_head(d4), self.class_head(d4)


class ExportWrapper(nn.Module):
    """The graph we ship: embedding upsampled to the input size and unit-normalised,
    class probabilities (a softmax per teacher label set) at stride 4."""

    def __init__(self, net: StudentNet):
        super().__init__()
        self.net = net

    def forward(self, image):
        emb, logits = self.net(image)
        emb = F.interpolate(emb, size=image.shape[-2:], mode="bilinear", align_corners=False)
        emb = F.normalize(emb, dim=1, eps=1e-6)
        probs = torch.cat([logits[:, :N_ADE].softmax(1), logits[:, N_ADE:].softmax(1)], dim=1)
        return emb, probs


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
