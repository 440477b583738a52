"""The ``sss-studio`` command: ``gui`` (the default) and ``segment``.

    sss-studio                         open the studio
    sss-studio photo.jpg               open the studio on a photo
    sss-studio gui photo.jpg --screenshot out.png
    sss-studio segment photo.jpg --out layers/ --psd photo_layers.psd [--features f.npy]

Bad input gets one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

EXIT_ERROR = 1       # bad input, unreadable file, failed export, missing model
EXIT_USAGE = 2       # argparse's own code for a malformed command line
EXIT_CANCELLED = 130


class CliError(Exception):
    pass


def _segment_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("segment", help="split a photo into soft layers and write them")
    p.add_argument("photo", help="the photo (JPEG, PNG, TIFF, …)")
    p.add_argument("--out", "-o", help="folder for layer_k.png, alpha_k.png, preview.png, layers.npz")
    p.add_argument("--psd", help="also write a layered PSD here")
    p.add_argument("--features", help="H×W×D .npy or H×W×3 image of features (instead of the model)")
    p.add_argument("--model", help="ONNX embedding model (default: the bundled models/sss_embed.onnx)")
    p.add_argument("--layers", "-k", type=int, default=5, help="number of soft layers (default 5)")
    p.add_argument("--mode", choices=["fast", "reference"], default=None, help="solver mode (default fast)")
    p.add_argument("--seed", type=int, default=0, help="seed for every random step (default 0)")
    p.add_argument("--working-size", type=float, default=None, help=WORKING_SIZE_HELP)
    p.add_argument("--cpu", action="store_true", help="run the model on the CPU even if CUDA is available")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    return p


WORKING_SIZE_HELP = ("megapixels the layers are computed at; larger photos are upsampled edge-aware "
                     "(default: 0.08 in fast mode, 0.3 in reference mode)")


def _gui_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("gui", help="open the studio (the default)")
    p.add_argument("photo", nargs="?", help="photo to open")
    p.add_argument("--screenshot", help="segment, save a grab of the window to this PNG and exit")
    p.add_argument("--mode", choices=["fast", "reference"], default=None)
    p.add_argument("--model", help="ONNX embedding model")
    p.add_argument("--features", help="features file for the photo (instead of the model)")
    p.add_argument("--working-size", type=float, default=None, help=WORKING_SIZE_HELP)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sss-studio", description="Semantic soft segmentation studio")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"sss-studio {__version__}")
    sub = parser.add_subparsers(dest="command")
    _gui_parser(sub)
    _segment_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `sss-studio photo.jpg` and plain `sss-studio` open the studio.
    if not argv or (argv[0] not in ("gui", "segment", "-h", "--help", "--version")):
        argv = ["gui"] + argv
    args = build_parser().parse_args(argv)
    try:
        if args.command == "segment":
            return segment_command(args)
        return gui_command(args)
    except CliError as e:
        print(f"sss-studio: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("sss-studio: cancelled", file=sys.stderr)
        return EXIT_CANCELLED


def gui_command(args: argparse.Namespace) -> int:
    try:
        from .gui.app import run_app
    except ImportError as e:
        raise CliError(f"the studio cannot start: {e}") from None
    if args.working_size is not None and args.working_size <= 0:
        raise CliError("--working-size must be a positive number of megapixels")
    return run_app(photo=args.photo, screenshot=args.screenshot, mode=args.mode, model=args.model,
                   features=args.features,
                   working_pixels=int(args.working_size * 1e6) if args.working_size else None)


def load_features_file(path: str):
    """An H×W×D .npy, or an image holding already-reduced H×W×3 features."""
    from .io.features_file import FeaturesFileError
    from .io.features_file import load_features_file as load

    try:
        return load(path)
    except FeaturesFileError as e:
        raise CliError(str(e)) from None


def load_embedding_model(path: Optional[str], prefer_gpu: bool = True):
    """The bundled (or given) ONNX embedding model, or a CliError saying what is missing."""
    try:
        from .core.features import EmbeddingModel, ModelError, default_model_path
    except ImportError:
        raise CliError(
            "no embedding model is bundled with this build; pass --features FILE with precomputed features"
        ) from None
    model_path = Path(path) if path else default_model_path()
    if not model_path.exists():
        raise CliError(f"embedding model not found at {model_path}; pass --model PATH or --features FILE")
    try:
        return EmbeddingModel(model_path, prefer_gpu=prefer_gpu)
    except ModelError as e:
        raise CliError(str(e)) from None


def segment_command(args: argparse.Namespace) -> int:
    from .core.cancel import Cancelled
    from .core.features import check_feature_size
    from .core.pipeline import DEFAULT_MODE, Segmenter, SegmenterParams
    from .io.export import ExportError, ensure_folder, write_png_stack, write_psd
    from .io.image import ImageLoadError, load_image

    if not args.out and not args.psd:
        args.out = str(Path(args.photo).with_suffix("")) + "_layers"
    if args.layers < 1:
        raise CliError("--layers must be at least 1")
    if args.working_size is not None and args.working_size <= 0:
        raise CliError("--working-size must be a positive number of megapixels")
    try:
        # Check the destinations first: nobody should wait for a run to learn the folder is read-only.
        if args.out:
            ensure_folder(args.out)
        if args.psd:
            ensure_folder(Path(args.psd).resolve().parent)
        image = load_image(args.photo)
    except (ImageLoadError, ExportError) as e:
        raise CliError(str(e)) from None

    features = load_features_file(args.features) if args.features else None
    if features is not None:
        try:
            check_feature_size(features, image)
        except ValueError as e:
            raise CliError(str(e)) from None
    model = None if features is not None else load_embedding_model(args.model, prefer_gpu=not args.cpu)

    params = SegmenterParams.for_mode(args.mode or DEFAULT_MODE, layers=args.layers, seed=args.seed)
    if args.working_size is not None:
        params = replace(params, working_pixels=max(1000, int(args.working_size * 1e6)))

    seg = Segmenter(params, embedding_model=model)
    seg.set_image(image, features)
    last = [None]
    t0 = time.perf_counter()

    def progress(stage: str, frac: float) -> None:
        if args.quiet or stage == last[0]:
            return
        last[0] = stage
        print(f"[{frac * 100:5.1f}%] {stage}", file=sys.stderr, flush=True)

    try:
        result = seg.run(progress=progress)
    except Cancelled:
        print("sss-studio: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except MemoryError:
        raise CliError("out of memory: try a smaller --working-size") from None

    names = result.layer_names or [f"Layer {k + 1}" for k in range(result.layer_count)]
    try:
        if args.out:
            write_png_stack(args.out, image, result.alphas, names, params=params.to_dict())
        if args.psd:
            write_psd(args.psd, image, result.alphas, names)
    except ExportError as e:
        raise CliError(str(e)) from None
    if not args.quiet:
        where = " and ".join(x for x in (args.out, args.psd) if x)
        prov = f", model on {result.provider}" if result.provider else ""
        print(
            f"{result.layer_count} layers written to {where} in {time.perf_counter() - t0:.1f} s{prov}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
