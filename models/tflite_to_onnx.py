"""Convert the DeepLab (MobileNetV2) TFLite teachers to float ONNX (opset 17, NCHW).

Our own converter (training-time only): it parses the flatbuffer with the PyPI
``tflite`` schema package, dequantises every constant as ``(q - zp) * scale``
(per channel where the tensor says so), and emits float ONNX nodes for the few
op types DeepLab uses. Only the ops needed for the requested outputs are
emitted, so the final resize and ArgMax of the teachers are dropped: we expose
their internal 256-D feature tensor and their coarse class logits instead.

Facts this relies on (see ../shared/models_src/CONVERTING.md):
- TFLite weights are OHWI (depthwise 1HWO), activations NHWC; ONNX is NCHW.
- TF "SAME" equals ONNX SAME_UPPER for strided convs; onnxruntime rejects
  auto_pad with dilation, so stride-1 convs get explicit symmetric pads.
- Quantisation-aware-trained graphs keep their clamps in the activation
  ranges: every float output is clipped to what its quantised tensor can hold.
- Resizes whose target size was frozen for one input size take it, at run
  time, from an earlier tensor that had that size, so any H×W works.

Input of the emitted graph: ``image``, float32 N×3×H×W, RGB in 0..255 (the
byte values the quantised models expect; the input quantisation is applied
inside the graph). Outputs: ``features`` N×256×h×w, ``logits`` N×C×h×w.

Usage: python models/tflite_to_onnx.py [--src ../shared/models_src] [--out .cache/teachers]
"""

from __future__ import annotations

import argparse
import pathlib
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import tflite

REPO = pathlib.Path(__file__).resolve().parents[1]
SRC = REPO.parent / "shared" / "models_src"

# tflite TensorType codes we meet
_NP_TYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
_QRANGE = {3: (0, 255), 9: (-128, 127)}


@dataclass(frozen=True)
class TeacherSpec:
    name: str            # cache file stem
    tflite_file: str
    feature_prefix: str  # start of the TFLite tensor name of the 256-D features
    logits_prefix: str   # start of the TFLite tensor name of the coarse logits
    stride: int          # output stride of both exposed tensors


TEACHERS = (
    TeacherSpec("ade20k", "deeplabv3_mnv2_ade20k_int8.tflite",
                "decoder/decoder_conv1_pointwise/Relu", "logits/semantic/BiasAdd", 4),
    TeacherSpec("pascal", "deeplabv3_mnv2_pascal_513_os8_quant.tflite",
                "concat_projection/Relu", "logits/semantic/BiasAdd", 8),
)


def _opname(model, op) -> str:
    oc = model.OperatorCodes(op.OpcodeIndex())
    return tflite.opcode2name(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()))


def _options(op, cls):
    table = op.BuiltinOptions()
    opt = cls()
    opt.Init(table.Bytes, table.Pos)
    return opt


class _Converter:
    def __init__(self, path: pathlib.Path):
        self.model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
        self.g = self.model.Subgraphs(0)
        self.nodes: list = []
        self.inits: list = []
        self.names: dict[int, str] = {}   # tflite tensor index -> ONNX value name
        self.static_hw: dict[int, tuple[int, int]] = {}
        self.uid = 0

    # ---- tensors -------------------------------------------------------
    def tensor(self, i):
        return self.g.Tensors(i)

    def _fresh(self, base: str) -> str:
        self.uid += 1
        return f"{base}_{self.uid}"

    def quant(self, i):
        q = self.tensor(i).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        zp = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength())
        return q.ScaleAsNumpy().astype(np.float64), np.asarray(zp, np.float64), q.QuantizedDimension()

    def const(self, i) -> np.ndarray | None:
        t = self.tensor(i)
        data = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            return None
        arr = np.frombuffer(data.tobytes(), dtype=_NP_TYPES[t.Type()]).reshape(t.ShapeAsNumpy())
        qp = self.quant(i)
        if qp is None or t.Type() == 0:
            return arr.astype(np.float32) if t.Type() == 0 else arr
        scale, zp, dim = qp
        shape = [1] * arr.ndim
        if scale.size > 1:
            shape[dim] = scale.size
        return ((arr.astype(np.float64) - zp.reshape(shape)) * scale.reshape(shape)).astype(np.float32)

    def add_init(self, arr: np.ndarray, base: str) -> str:
        name = self._fresh(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def clip_to_quant_range(self, i: int, value: str) -> str:
        """QAT graphs clamp through their uint8/int8 ranges: reproduce the clamp."""
        qp = self.quant(i)
        t = self.tensor(i).Type()
        if qp is None or t not in _QRANGE or qp[0].size != 1:
            return value
        scale, zp = float(qp[0][0]), float(qp[1][0])
        lo, hi = ((q - zp) * scale for q in _QRANGE[t])
        out = self._fresh("clip")
        self.nodes.append(helper.make_node(
            "Clip", [value, self.add_init(np.float32(lo), "lo"), self.add_init(np.float32(hi), "hi")], [out]))
        return out

    def activation(self, code: int, value: str) -> str:
        if code == 0:
            return value
        out = self._fresh("act")
        if code == 1:
            self.nodes.append(helper.make_node("Relu", [value], [out]))
        elif code == 3:
            self.nodes.append(helper.make_node(
                "Clip", [value, self.add_init(np.float32(0), "z"), self.add_init(np.float32(6), "six")], [out]))
        else:
            raise NotImplementedError(f"fused activation {code}")
        return out

    # ---- graph walk ------------------------------------------------------
    def needed_ops(self, outputs: list[int]) -> list[int]:
        producer = {}
        for k in range(self.g.OperatorsLength()):
            op = self.g.Operators(k)
            for j in range(op.OutputsLength()):
                producer[op.Outputs(j)] = k
        need, stack = set(), list(outputs)
        while stack:
            t = stack.pop()
            k = producer.get(t)
            if k is None or k in need:
                continue
            need.add(k)
            op = self.g.Operators(k)
            stack.extend(op.Inputs(j) for j in range(op.InputsLength()) if op.Inputs(j) >= 0)
        return sorted(need)

    def find_tensor(self, prefix: str) -> int:
        # Fused bias tensors share the name prefix: keep 4-D activations only.
        hits = [i for i in range(self.g.TensorsLength())
                if self.tensor(i).Name().decode().startswith(prefix)
                and len(self.tensor(i).ShapeAsNumpy()) == 4]
        if len(hits) != 1:
            raise ValueError(f"{len(hits)} tensors start with {prefix!r}")
        return hits[0]

    def size_ref(self, target_hw: tuple[int, int], before_op: int) -> str:
        """An earlier value whose spatial size equals a frozen resize target."""
        for t, hw in reversed(list(self.static_hw.items())):
            if hw == target_hw and t in self.names:
                return self.names[t]
        raise ValueError(f"no tensor of size {target_hw} before op {before_op}")

    def convert(self, feature_prefix: str, logits_prefix: str) -> onnx.ModelProto:
        g = self.g
        inp = g.Inputs(0)
        self.names[inp] = "image"
        h0, w0 = self.tensor(inp).ShapeAsNumpy()[1:3]
        self.static_hw[inp] = (int(h0), int(w0))
        # Input quantisation: the graph receives byte values p, the net sees scale*(p-zp).
        qp = self.quant(inp)
        if qp is not None and self.tensor(inp).Type() in _QRANGE:
            scale, zp = float(qp[0][0]), float(qp[1][0])
            if self.tensor(inp).Type() == 9:   # int8 input: bytes are shifted by 128
                zp += 128.0
            sub, out = self._fresh("centred"), self._fresh("normed")
            self.nodes.append(helper.make_node("Sub", ["image", self.add_init(np.float32(zp), "zp")], [sub]))
            self.nodes.append(helper.make_node("Mul", [sub, self.add_init(np.float32(scale), "sc")], [out]))
            self.names[inp] = out
        else:   # float model: normalise (p - 127.5) / 127.5 by hand
            sub, out = self._fresh("centred"), self._fresh("normed")
            self.nodes.append(helper.make_node("Sub", ["image", self.add_init(np.float32(127.5), "zp")], [sub]))
            self.nodes.append(helper.make_node("Div", [sub, self.add_init(np.float32(127.5), "sc")], [out]))
            self.names[inp] = out

        feat, logit = self.find_tensor(feature_prefix), self.find_tensor(logits_prefix)
        for k in self.needed_ops([feat, logit]):
            self.emit(k)
        for t, name in ((feat, "features"), (logit, "logits")):
            self.nodes.append(helper.make_node("Identity", [self.names[t]], [name]))
        dyn = ["N", 3, "H", "W"]
        graph = helper.make_graph(
            self.nodes, "teacher",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, dyn)],
            [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", int(self.tensor(feat).ShapeAsNumpy()[3]), "h", "w"]),
             helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", int(self.tensor(logit).ShapeAsNumpy()[3]), "h", "w"])],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  producer_name="sss_studio.models.tflite_to_onnx")
        onnx.checker.check_model(model)
        return model

    def emit(self, k: int) -> None:
        op = self.g.Operators(k)
        kind = _opname(self.model, op)
        ins = [op.Inputs(j) for j in range(op.InputsLength())]
        out_t = op.Outputs(0)
        shape = self.tensor(out_t).ShapeAsNumpy()
        if len(shape) == 4:
            self.static_hw[out_t] = (int(shape[1]), int(shape[2]))
        x = self.names.get(ins[0])
        result: str
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            opt = _options(op, tflite.Conv2DOptions if kind == "CONV_2D" else tflite.DepthwiseConv2DOptions)
            w = self.const(ins[1])
            if kind == "CONV_2D":
                w = w.transpose(0, 3, 1, 2)                  # OHWI -> OIHW
                group = 1
            else:
                w = w.transpose(3, 0, 1, 2)                  # 1HWO -> O1HW
                group = w.shape[0]
            b = self.const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else np.zeros(w.shape[0], np.float32)
            kh, kw = w.shape[2:]
            sh, sw = opt.StrideH(), opt.StrideW()
            dh, dw = opt.DilationHFactor(), opt.DilationWFactor()
            attrs = dict(strides=[sh, sw], dilations=[dh, dw], group=group)
            if opt.Padding() == 1 or (kh == 1 and kw == 1):   # VALID, or 1x1 needs none
                attrs["pads"] = [0, 0, 0, 0]
            elif sh == 1 and sw == 1:
                ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2
                attrs["pads"] = [ph, pw, ph, pw]
            else:
                if dh != 1 or dw != 1:
                    raise NotImplementedError("strided dilated SAME conv")
                attrs["auto_pad"] = "SAME_UPPER"
            result = self._fresh("conv")
            self.nodes.append(helper.make_node(
                "Conv", [x, self.add_init(w, "w"), self.add_init(b.astype(np.float32), "b")], [result], **attrs))
            result = self.activation(opt.FusedActivationFunction(), result)
        elif kind == "ADD":
            opt = _options(op, tflite.AddOptions)
            a, c = (self.names.get(i) or self._const_nchw(i) for i in ins)
            result = self._fresh("add")
            self.nodes.append(helper.make_node("Add", [a, c], [result]))
            result = self.activation(opt.FusedActivationFunction(), result)
        elif kind == "AVERAGE_POOL_2D":
            opt = _options(op, tflite.Pool2DOptions)
            if tuple(shape[1:3]) != (1, 1):
                raise NotImplementedError("only global average pooling is supported")
            result = self._fresh("gap")
            self.nodes.append(helper.make_node("GlobalAveragePool", [x], [result]))
            result = self.activation(opt.FusedActivationFunction(), result)
        elif kind == "RESIZE_BILINEAR":
            opt = _options(op, tflite.ResizeBilinearOptions)
            mode = ("align_corners" if opt.AlignCorners()
                    else "half_pixel" if opt.HalfPixelCenters() else "asymmetric")
            ref = self.size_ref((int(shape[1]), int(shape[2])), k)
            sx, sr = self._fresh("shape"), self._fresh("shape")
            self.nodes.append(helper.make_node("Shape", [x], [sx], end=2))
            self.nodes.append(helper.make_node("Shape", [ref], [sr], start=2))
            sizes = self._fresh("sizes")
            self.nodes.append(helper.make_node("Concat", [sx, sr], [sizes], axis=0))
            result = self._fresh("resize")
            self.nodes.append(helper.make_node(
                "Resize", [x, "", "", sizes], [result], mode="linear",
                coordinate_transformation_mode=mode))
        elif kind == "CONCATENATION":
            opt = _options(op, tflite.ConcatenationOptions)
            axis = {0: 0, 1: 2, 2: 3, 3: 1}[opt.Axis() % 4]
            result = self._fresh("concat")
            self.nodes.append(helper.make_node("Concat", [self.names[i] for i in ins], [result], axis=axis))
            result = self.activation(opt.FusedActivationFunction(), result)
        elif kind in ("QUANTIZE", "DEQUANTIZE"):
            result = x     # identity in float; the range clip below keeps the requantisation clamp
        else:
            raise NotImplementedError(f"TFLite op {kind}")
        self.names[out_t] = self.clip_to_quant_range(out_t, result)

    def _const_nchw(self, i: int) -> str:
        arr = self.const(i)
        if arr is None:
            raise ValueError(f"tensor {i} is neither computed nor constant")
        if arr.ndim == 4:
            arr = arr.transpose(0, 3, 1, 2)
        elif arr.ndim == 1:
            arr = arr.reshape(1, -1, 1, 1)
        return self.add_init(arr.astype(np.float32), "c")


def convert(tflite_path: pathlib.Path, spec: TeacherSpec) -> onnx.ModelProto:
    model = _Converter(tflite_path).convert(spec.feature_prefix, spec.logits_prefix)
    meta = model.metadata_props.add()
    meta.key, meta.value = "stride", str(spec.stride)
    meta = model.metadata_props.add()
    meta.key, meta.value = "source", tflite_path.name
    return model


def convert_all(src: pathlib.Path, out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for spec in TEACHERS:
        model = convert(src / spec.tflite_file, spec)
        dst = out / f"{spec.name}.onnx"
        onnx.save(model, dst)
        print(f"{spec.tflite_file} -> {dst} ({dst.stat().st_size / 1e6:.1f} MB, {len(model.graph.node)} nodes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=pathlib.Path, default=SRC)
    ap.add_argument("--out", type=pathlib.Path, default=REPO / ".cache" / "teachers")
    args = ap.parse_args()
    convert_all(args.src, args.out)


if __name__ == "__main__":
    main()
