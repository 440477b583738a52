"""Check our converted teacher ONNX files against the TFLite interpreter.

Three steps, because ``tflite-runtime`` needs numpy<2 and lives in its own venv:

    python models/check_teacher_conversion.py prepare            # main env: photos -> uint8 inputs
    /tmp/tflvenv/bin/python models/check_teacher_conversion.py dump   # venv with tflite-runtime
    python models/check_teacher_conversion.py compare            # main env: ONNX vs TFLite

Compares, per teacher, the per-pixel argmax of the coarse logits (class
agreement) and the Pearson correlation of the 256-D features with the
dequantised TFLite activations.
"""

from __future__ import annotations

import csv
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
WORK = REPO / ".cache" / "teacher_check"
PHOTOS = REPO.parent / "shared" / "photos"
SRC = REPO.parent / "shared" / "models_src"
# teacher name -> (tflite file, input side, feature / logits tensor name prefixes)
CHECKS = {
    "ade20k": ("deeplabv3_mnv2_ade20k_int8.tflite", 512,
               "decoder/decoder_conv1_pointwise/Relu", "logits/semantic/BiasAdd"),
    "pascal": ("deeplabv3_mnv2_pascal_513_os8_quant.tflite", 513,
               "concat_projection/Relu", "logits/semantic/BiasAdd"),
}
N_PHOTOS = 24


def prepare() -> None:
    import cv2
    rows = list(csv.DictReader(open(PHOTOS / "manifest.csv")))
    rng = np.random.default_rng(0)
    pick = [rows[i]["path"] for i in rng.choice(len(rows), N_PHOTOS, replace=False)]
    WORK.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (_, side, _, _) in CHECKS.items():
        imgs = []
        for p in pick:
            bgr = cv2.imread(str(PHOTOS / p))
            imgs.append(cv2.resize(bgr, (side, side), interpolation=cv2.INTER_AREA)[:, :, ::-1])
        out[name] = np.stack(imgs).astype(np.uint8)
    np.savez(WORK / "inputs.npz", **out)
    print("prepared", pick)


def dump() -> None:
    from tflite_runtime.interpreter import Interpreter
    inputs = np.load(WORK / "inputs.npz")
    res = {}
    for name, (fname, _, fpre, lpre) in CHECKS.items():
        it = Interpreter(model_path=str(SRC / fname), experimental_preserve_all_tensors=True)
        it.allocate_tensors()
        det = it.get_tensor_details()

        def find(prefix, det=det):
            return [d for d in det if d["name"].startswith(prefix) and len(d["shape"]) == 4][0]

        fd, ld = find(fpre), find(lpre)
        inp = it.get_input_details()[0]
        feats, logits = [], []
        for img in inputs[name]:
            x = img[None]
            if inp["dtype"] == np.int8:
                x = (x.astype(np.int16) - 128).astype(np.int8)
            it.set_tensor(inp["index"], x)
            it.invoke()
            for d, acc in ((fd, feats), (ld, logits)):
                q = it.get_tensor(d["index"]).astype(np.float32)
                s, z = d["quantization"]
                acc.append((q - z) * s if s else q)
        res[f"{name}_features"] = np.stack(feats)
        res[f"{name}_logits"] = np.stack(logits)
        print(name, res[f"{name}_features"].shape, res[f"{name}_logits"].shape)
    np.savez(WORK / "tflite_out.npz", **res)


def compare() -> None:
    import onnxruntime as ort
    inputs = np.load(WORK / "inputs.npz")
    ref = np.load(WORK / "tflite_out.npz")
    for name in CHECKS:
        sess = ort.InferenceSession(str(REPO / ".cache" / "teachers" / f"{name}.onnx"),
                                    providers=["CPUExecutionProvider"])
        agree, corr = [], []
        for k, img in enumerate(inputs[name]):
            x = img.astype(np.float32).transpose(2, 0, 1)[None]
            f, lg = sess.run(["features", "logits"], {"image": x})
            rf = ref[f"{name}_features"][k][0].transpose(2, 0, 1)
            rl = ref[f"{name}_logits"][k][0].transpose(2, 0, 1)
            agree.append(np.mean(lg[0].argmax(0) == rl.argmax(0)))
            corr.append(np.corrcoef(f[0].ravel(), rf.ravel())[0, 1])
        print(f"{name}: class agreement mean {np.mean(agree):.4f} min {np.min(agree):.4f}; "
              f"feature correlation mean {np.mean(corr):.4f} min {np.min(corr):.4f} ({len(agree)} photos)")


if __name__ == "__main__":
    {"prepare": prepare, "dump": dump, "compare": compare}[sys.argv[1]]()
