"""A hostile but realistic corpus, each case run as a real ``sss-studio`` process: other
formats, odd sizes, damaged files, bad values, models, features, destinations and
projects. A case passes when it gives a correct result (layers that sum to one at the
photo's oriented size) or one line on stderr and exit code 1 (130/143 for a stop),
never a traceback, never a hang. Writes the 'hostile_corpus' section of RESULTS.md.

    python benchmarks/hostile_corpus.py [--timeout 300]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "resources" / "samples" / "chelsea.png"


def _photo() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))


def make_cases(d: Path) -> list[tuple[str, str, list[str], str]]:
    """(group, case, command arguments, what is expected: "layers" or "refused")."""
    rgb = _photo()
    h, w = rgb.shape[:2]
    im = Image.fromarray(rgb)
    cases: list[tuple[str, str, list[str], str]] = []

    def photo(name: str, save, expect: str = "layers", extra: list[str] | None = None, group: str = "formats"):
        path = d / name
        save(path)
        cases.append((group, name, ["segment", str(path), "--out", str(d / f"out_{name}"), "-q", *(extra or [])],
                      expect))

    photo("progressive.jpg", lambda p: im.save(p, progressive=True, quality=85))
    photo("cmyk.jpg", lambda p: im.convert("CMYK").save(p))
    photo("grey.jpg", lambda p: im.convert("L").save(p))
    photo("palette_transparent.png", lambda p: im.convert("P", palette=Image.Palette.ADAPTIVE).save(p, transparency=0))
    photo("rgba16.png", lambda p: _save16(p, rgb, alpha=True))
    photo("grey16.tif", lambda p: _save16(p, rgb[:, :, 0], alpha=False))
    photo("lzw.tif", lambda p: im.save(p, compression="tiff_lzw"))
    photo("float32.tif", lambda p: _save_float_tiff(p, rgb))
    photo("photo.bmp", lambda p: im.save(p))
    photo("photo.webp", lambda p: im.save(p, quality=80))
    photo("animated.gif", lambda p: im.save(p, save_all=True, append_images=[im.rotate(90, expand=False)]))
    photo("exif_rotated.jpg", lambda p: _exif_rotated(p, im))
    photo("one_bit.png", lambda p: im.convert("1").save(p))
    photo("la.png", lambda p: im.convert("LA").save(p))
    photo("icon.ico", lambda p: im.resize((64, 64)).save(p))
    photo("all_white.png", lambda p: Image.new("RGB", (400, 300), "white").save(p), group="sizes")
    photo("noise.png", lambda p: Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), np.uint8))
          .save(p), group="sizes")
    for sw, sh in ((8, 8), (9, 4000), (4000, 9), (3, 3), (7, 500), (1, 1)):
        expect = "layers" if min(sw, sh) >= 8 else "refused"
        photo(f"{sw}x{sh}.png", lambda p, sw=sw, sh=sh: im.resize((sw, sh)).save(p), expect, group="sizes")
    photo("3000x3000.jpg", lambda p: im.resize((3000, 3000)).save(p, quality=90), group="sizes")

    def damaged(name: str, data: bytes):
        (d / name).write_bytes(data)
        cases.append(("damaged files", name, ["segment", str(d / name), "--out", str(d / f"out_{name}"), "-q"],
                      "refused"))

    good_jpg = io.BytesIO()
    im.save(good_jpg, format="JPEG")
    good_png = io.BytesIO()
    im.save(good_png, format="PNG")
    damaged("truncated.jpg", good_jpg.getvalue()[: len(good_jpg.getvalue()) // 3])
    damaged("truncated.png", good_png.getvalue()[:2000])
    damaged("zero.png", b"")
    damaged("random.png", np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
    damaged("html.jpg", b"<html><body>not a photo</body></html>")
    damaged("zip.png", _zip_bytes())
    damaged("header_only.png", good_png.getvalue()[:33])
    bad_crc = bytearray(good_png.getvalue())
    bad_crc[40] ^= 0xFF
    damaged("bad_crc.png", bytes(bad_crc))
    big = d / "bomb.png"
    Image.new("1", (20000, 12000)).save(big)   # 240 MP, tiny file
    cases.append(("damaged files", "bomb.png (240 MP)", ["segment", str(big), "--out", str(d / "out_bomb"), "-q"],
                  "refused"))

    base = d / "base.png"
    im.save(base)
    np.save(d / "feats.npy", np.random.default_rng(2).random((h, w, 8)).astype(np.float32))

    def cli(group: str, name: str, args: list[str], expect: str):
        cases.append((group, name, ["segment", str(base), *args], expect))

    out = ["--out", str(d / "out_values"), "-q"]
    for name, args, expect in (
        ("-k 0", ["-k", "0"], "refused"), ("-k 1", ["-k", "1"], "layers"), ("-k 2", ["-k", "2"], "layers"),
        ("-k 60", ["-k", "60"], "layers"), ("--working-size 0.001", ["--working-size", "0.001"], "layers"),
        ("--working-size 2", ["--working-size", "2"], "layers"), ("--working-size -1", ["--working-size", "-1"], "refused"),
        ("--working-size nan", ["--working-size", "nan"], "refused"), ("--seed -1", ["--seed", "-1"], "refused"),
        ("--seed 2**40", ["--seed", str(2 ** 40)], "layers"), ("--mode bogus", ["--mode", "bogus"], "usage"),
    ):
        cli("values", name, args + out, expect)
    (d / "empty.onnx").write_bytes(b"")
    (d / "text.onnx").write_text("not a model")
    _wrong_contract_model(d / "wrong.onnx")
    for name in ("empty.onnx", "text.onnx", "wrong.onnx", "missing.onnx"):
        cli("models", name, ["--model", str(d / name)] + out, "refused")
    np.save(d / "strings.npy", np.array([["a", "b"]]))
    np.save(d / "nan_feats.npy", np.full((h, w, 4), np.nan, np.float32))
    np.save(d / "small_feats.npy", np.zeros((10, 10, 3), np.float32))
    np.save(d / "empty_feats.npy", np.zeros((h, w, 0), np.float32))
    with open(d / "object.npy", "wb") as f:
        np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name in ("strings.npy", "nan_feats.npy", "small_feats.npy", "empty_feats.npy", "object.npy"):
        cli("features", name, ["--features", str(d / name)] + out, "refused")
    cli("features", "feats.npy (right size)", ["--features", str(d / "feats.npy")] + out, "layers")
    (d / "a_file").write_text("x")
    ro = d / "read_only.psd"
    ro.write_bytes(b"old")
    ro.chmod(0o444)
    (d / "psd_folder.psd").mkdir()
    for name, args, expect in (
        ("--out is a file", ["--out", str(d / "a_file"), "-q"], "refused"),
        ("--out under a file", ["--out", str(d / "a_file" / "sub"), "-q"], "refused"),
        ("--psd in new folders", ["--psd", str(d / "new" / "deep" / "x.psd"), "-q"], "layers"),
        ("--psd is a folder", ["--psd", str(d / "psd_folder.psd"), "-q"], "refused"),
        ("--psd read-only" + (" (root: replaced)" if os.geteuid() == 0 else ""), ["--psd", str(ro), "-q"],
         "layers" if os.geteuid() == 0 else "refused"),
    ):
        cli("destinations", name, args, expect)
    return cases


def _save16(path: Path, rgb: np.ndarray, alpha: bool) -> None:
    import cv2

    a = rgb.astype(np.uint16) * 257
    if a.ndim == 3:
        a = a[:, :, ::-1]
        if alpha:
            a = np.dstack([a, np.full(a.shape[:2], 40000, np.uint16)])
    cv2.imwrite(str(path), a)


def _save_float_tiff(path: Path, rgb: np.ndarray) -> None:
    import cv2

    cv2.imwrite(str(path), (rgb[:, :, ::-1] / 255.0).astype(np.float32))


def _exif_rotated(path: Path, im: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(path, exif=exif)


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "zip")
    return buf.getvalue()


def _wrong_contract_model(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def judge(args: list[str], expect: str, proc: subprocess.CompletedProcess | None, d: Path) -> tuple[str, str]:
    """(outcome, detail)."""
    if proc is None:
        return "hang", "no exit before the time limit"
    err = proc.stderr.strip()
    if "Traceback" in err:
        return "traceback", err.splitlines()[-1][:120]
    lines = [x for x in err.splitlines() if not x.startswith("[") and "note:" not in x]
    if proc.returncode == 0:
        out = Path(args[args.index("--out") + 1]) if "--out" in args else None
        if out is not None and (out / "layers.npz").exists():
            with np.load(out / "layers.npz") as z:
                a = z["alphas"]
            ok = np.isfinite(a).all() and np.abs(a.sum(0) - 1).max() <= 1e-3
            return ("layers" if ok else "bad layers"), f"{a.shape[0]} layers {a.shape[2]}×{a.shape[1]}"
        return "layers", "written"
    if proc.returncode == 2 and expect == "usage":
        return "usage", lines[-1][:120] if lines else ""
    if proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("sss-studio: error:"):
        return "refused", lines[0][len("sss-studio: error: "):][:120]
    return "other", f"exit {proc.returncode}: " + " | ".join(lines)[:120]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=int, default=300)
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="sss_hostile_"))
    rows = []
    try:
        for group, name, args, expect in make_cases(d):
            t0 = time.perf_counter()
            try:
                proc = subprocess.run([sys.executable, "-m", "sss_studio", *args], capture_output=True, text=True,
                                      timeout=a.timeout, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
            except subprocess.TimeoutExpired:
                proc = None
            outcome, detail = judge(args, expect, proc, d)
            rows.append((group, name, expect, outcome, detail, time.perf_counter() - t0))
            print(f"{group:14s} {name:32s} {outcome:10s} {'ok' if outcome == expect else 'FAIL'}  {detail}", flush=True)
    finally:
        for p in d.rglob("*"):
            try:
                p.chmod(0o700 if p.is_dir() else 0o600)
            except OSError:
                pass
        shutil.rmtree(d, ignore_errors=True)
    passed = sum(r[2] == r[3] for r in rows)
    lines = ["## Hostile corpus (hostile_corpus.py)", "",
             f"{len(rows)} cases, each a real `sss-studio segment` process; {passed} as expected, "
             f"{sum(r[3] == 'traceback' for r in rows)} tracebacks, {sum(r[3] == 'hang' for r in rows)} hangs.", "",
             "| group | case | expected | outcome | detail | s |", "|---|---|---|---|---|---|"]
    for group, name, expect, outcome, detail, sec in rows:
        mark = outcome if outcome == expect else f"**{outcome}**"
        lines.append(f"| {group} | {name} | {expect} | {mark} | {detail.replace('|', '/')} | {sec:.0f} |")
    section = "\n".join(lines)
    results = REPO / "benchmarks" / "RESULTS.md"
    text = results.read_text()
    start, end = "<!-- hostile_corpus start -->", "<!-- hostile_corpus end -->"
    block = f"{start}\n{section}\n{end}"
    text = (text.split(start)[0] + block + text.split(end)[1]) if start in text else text.rstrip() + "\n\n" + block + "\n"
    results.write_text(text)
    print(section)
    json.dump(rows, open(REPO / ".cache" / "hostile_rows.json", "w") if (REPO / ".cache").is_dir() else io.StringIO())


if __name__ == "__main__":
    main()
