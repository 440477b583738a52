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
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from .segmentation.params import FAST_WORKING_PIXELS, REFERENCE_WORKING_PIXELS

EXIT_ERROR = 1       # bad input, unreadable file, failed export, missing model
EXIT_USAGE = 2       # argparse's own code for a malformed command line
EXIT_CANCELLED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as shells report it


class CliError(Exception):
    pass


def _segment_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("segment", help="split photos into soft layers and write them", parents=[_common_options()])
    p.add_argument("photo", nargs="+",
                   help="the photo (JPEG, PNG, TIFF, …); several photos, folders or quoted globs make a batch")
    p.add_argument("--out", "-o", help="folder for the layer PNGs, preview.png and layers.npz (a batch: the folder "
                                       "that gets one such folder per photo)")
    p.add_argument("--psd", nargs="?", const="", default=None,
                   help="also write a layered PSD here (without a path: PHOTO.psd in the photo's output folder)")
    p.add_argument("--recursive", "-r", action="store_true", help="a batch: photos in sub-folders too")
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="a batch: photos segmented side by side in this many processes (default 1)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="a batch: run on an existing Dask scheduler (tcp://host:8786); its workers read the "
                        "photos and write the outputs, so the paths must be reachable from them")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per photo on stdout (path, status, seconds, layers, error)")
    p.add_argument("--features", help="H×W×D .npy or H×W×3 image of features (instead of the model)")
    p.add_argument("--model", help="ONNX embedding model (default: the bundled models/sss_embed.onnx)")
    p.add_argument("--layers", "-k", type=int, default=5, help="number of soft layers (default 5)")
    p.add_argument("--mode", choices=["fast", "reference"], default=None, help="solver mode (default fast)")
    p.add_argument("--seed", type=int, default=0, help="seed for every random step (default 0)")
    p.add_argument("--working-size", type=float, default=None, help=WORKING_SIZE_HELP)
    p.add_argument("--cpu", action="store_true", help="run the model on the CPU even if CUDA is available")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p.add_argument("--force", action="store_true",
                   help="replace a read-only PSD; in a batch, redo photos whose outputs are already there")
    p.add_argument("--photo-colours", action="store_true",
                   help="layers keep the photo's colours in soft pixels (default: each layer's own colours, "
                        "so it composites onto a new background without a fringe)")
    return p


WORKING_SIZE_HELP = ("megapixels the layers are computed at; larger photos are upsampled edge-aware "
                     f"(default: {FAST_WORKING_PIXELS / 1e6:g} in fast mode, "
                     f"{REFERENCE_WORKING_PIXELS / 1e6:g} in reference mode)")


def _gui_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("gui", help="open the studio (the default)", parents=[_common_options()])
    p.add_argument("photo", nargs="?", help="photo to open")
    p.add_argument("--screenshot", help="segment, save a grab of the window to this PNG and exit")
    p.add_argument("--mode", choices=["fast", "reference"], default=None)
    p.add_argument("--model", help="ONNX embedding model")
    p.add_argument("--features", help="features file for the photo (instead of the model)")
    p.add_argument("--working-size", type=float, default=None, help=WORKING_SIZE_HELP)
    return p


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", "-v", action="count", default=0,
                        help="log what happens (stage timings, the model's provider); -vv for debug detail")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sss-studio", description="Semantic soft segmentation studio")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"sss-studio {__version__}")
    sub = parser.add_subparsers(dest="command")
    _gui_parser(sub)
    _segment_parser(sub)
    sub.add_parser("install-desktop", help="add the studio to this user's desktop menus (Linux), with .sssproj files")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from . import _threads_env

    _threads_env.apply()  # before anything loads numpy
    _terminate_like_interrupt()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `sss-studio photo.jpg` and plain `sss-studio` open the studio.
    if not argv or (argv[0] not in ("gui", "segment", "install-desktop", "-h", "--help", "--version")):
        argv = ["gui"] + argv
    args = build_parser().parse_args(argv)
    configure_logging(getattr(args, "verbose", 0))
    try:
        if args.command == "segment":
            return segment_command(args)
        if args.command == "install-desktop":
            return install_desktop_command()
        return gui_command(args)
    except CliError as e:
        print(f"sss-studio: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as e:
        if str(e).startswith("signal"):
            print("sss-studio: terminated", file=sys.stderr)
            return EXIT_TERMINATED
        print("sss-studio: cancelled", file=sys.stderr)
        return EXIT_CANCELLED


def _terminate_like_interrupt() -> None:
    """SIGTERM (a session ending, kill) stops a run as Ctrl+C does: temporary files are
    removed on the way out and the command says so."""
    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if hasattr(signal, "SIGTERM"):
        try:
            signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread (embedded): leave it alone
            pass


def install_desktop_command() -> int:
    from .desktop import install

    if not sys.platform.startswith("linux"):
        raise CliError("install-desktop is for Linux desktops; the installer sets up Windows and macOS")
    try:
        for path in install():
            print(path)
    except OSError as e:
        raise CliError(f"cannot install the desktop entry: {e}") from None
    return 0


def configure_logging(verbose: int) -> None:
    """Warnings only by default; -v: what happens (INFO), -vv: debug detail, Qt's too."""
    import logging

    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(detail=verbose > 0, colour=_colour_ok(sys.stderr)))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("sss_studio").setLevel(level)


def _colour_ok(stream) -> bool:
    """Colour only on a terminal and never when NO_COLOR is set (no-color.org)."""
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()


class _Formatter:
    """``sss-studio: warning: …`` (the word in yellow on a colour terminal); with -v also
    the level and the logger of INFO/DEBUG lines."""

    def __init__(self, detail: bool, colour: bool):
        self.detail, self.colour = detail, colour

    def format(self, record) -> str:
        import logging

        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            word = "error" if record.levelno >= logging.ERROR else "warning"
            if self.colour:
                word = f"\033[{'31' if word == 'error' else '33'}m{word}\033[0m"
            return f"sss-studio: {word}: {text}"
        return f"sss-studio: {record.name}: {text}" if self.detail else f"sss-studio: {text}"


def gui_command(args: argparse.Namespace) -> int:
    try:
        from .gui.app import StudioCannotStart, run_app
    except ImportError as e:
        raise CliError(f"the studio cannot start: {e}") from None
    _check_numbers(args)
    if args.screenshot:
        # Headless: a grab that cannot be written must fail now, not hang after the run.
        shot = Path(args.screenshot)
        if shot.is_dir():
            raise CliError(f"cannot write the screenshot {shot}: it is a folder")
        try:
            shot.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CliError(f"cannot write the screenshot {shot}: {e.strerror or e}") from None
        if not os.access(shot.parent, os.W_OK):
            raise CliError(f"cannot write the screenshot {shot}: permission denied")
    try:
        return run_app(photo=args.photo, screenshot=args.screenshot, mode=args.mode, model=args.model,
                       features=args.features,
                       working_pixels=int(args.working_size * 1e6) if args.working_size else None)
    except StudioCannotStart as e:
        raise CliError(str(e)) from None


def _check_numbers(args: argparse.Namespace) -> None:
    import math

    if getattr(args, "layers", 1) < 1:
        raise CliError("--layers must be at least 1")
    if args.working_size is not None and not (math.isfinite(args.working_size) and args.working_size > 0):
        raise CliError("--working-size must be a positive number of megapixels")
    if getattr(args, "seed", 0) < 0:
        raise CliError("--seed must be 0 or more")


def _run_params(args: argparse.Namespace):
    """The run's parameters from the command line: the mode's preset, the layer count,
    the seed and the working size."""
    from .segmentation.params import DEFAULT_MODE, SegmenterParams

    params = SegmenterParams.for_mode(args.mode or DEFAULT_MODE, layers=args.layers, seed=args.seed)
    if args.working_size is not None:
        params = replace(params, working_pixels=max(1000, int(args.working_size * 1e6)))
    return params


def _is_batch(args: argparse.Namespace) -> bool:
    import glob

    if len(args.photo) > 1 or args.jobs != 1 or args.dask or args.json or args.recursive:
        return True
    only = args.photo[0]
    return Path(only).is_dir() or (glob.has_magic(only) and not Path(only).exists())


def segment_command(args: argparse.Namespace) -> int:
    if _is_batch(args):
        return batch_command(args)
    args.photo = args.photo[0]
    if args.psd == "":   # --psd without a path: beside the PNG stack, else beside the photo
        stem = Path(args.photo).stem
        args.psd = str(Path(args.out) / f"{stem}.psd" if args.out else Path(args.photo).with_name(f"{stem}_layers.psd"))
    return _segment_one(args)


def _segment_one(args: argparse.Namespace) -> int:
    from .io.export import (
        ExportError,
        check_destination,
        estimated_export_bytes,
        free_space_check,
        write_png_stack,
        write_psd,
    )
    from .io.image import ImageLoadError, read_image
    from .io.params_dict import params_to_dict
    from .segmentation.cancel import Cancelled
    from .segmentation.embedding import ModelError
    from .segmentation.features import check_feature_size
    from .segmentation.sources import FeatureError, FeatureSource

    if not args.out and not args.psd:
        args.out = str(Path(args.photo).with_suffix("")) + "_layers"
    _check_numbers(args)
    try:
        # Check the destinations first (nobody should wait for a run to learn the folder is
        # read-only), creating nothing yet: a rejected photo leaves no empty folder.
        if args.out:
            check_destination(args.out)
        if args.psd:
            check_destination(args.psd, "file", replace_read_only=args.force)
        image, info = read_image(args.photo)
        h, w = image.shape[:2]
        for where, png, psd in ((args.out, True, False), (args.psd and Path(args.psd).resolve().parent, False, True)):
            if where:
                free_space_check(where, estimated_export_bytes(h, w, args.layers, png, psd))
    except (ImageLoadError, ExportError) as e:
        raise CliError(str(e)) from None

    source = FeatureSource(model_path=args.model, features_path=args.features, prefer_gpu=not args.cpu)
    try:
        if args.features:
            # A features file given on the command line is for this photo: refuse another size.
            check_feature_size(source.features_file(), image)
        else:
            source.model()  # load it now: a missing or broken model is said before the run
    except FeatureError as e:
        hint = "; pass --model PATH or --features FILE" if "not found" in str(e) and not args.features else ""
        raise CliError(f"{e}{hint}") from None
    except ValueError as e:
        raise CliError(str(e)) from None

    params = _run_params(args)
    try:
        seg = source.prepare(image, params).segmenter
    except (FeatureError, ValueError) as e:
        raise CliError(str(e)) from None
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
    except (ModelError, ValueError) as e:
        raise CliError(str(e)) from None
    if result.layer_count < args.layers:
        print(f"sss-studio: note: {args.layers} layers asked for; this photo gives {result.layer_count} "
              "(the soft segments it splits into)", file=sys.stderr)

    names = result.layer_names
    try:
        if args.out:
            write_png_stack(args.out, image, result.alphas, names, params=params_to_dict(params),
                            metadata=info.metadata, layer_colours=not args.photo_colours)
        if args.psd:
            write_psd(args.psd, image, result.alphas, names, metadata=info.metadata,
                      layer_colours=not args.photo_colours)
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


def batch_command(args: argparse.Namespace) -> int:
    """Many photos: one output folder each under --out, skipped when done, one bad photo
    an error line and the rest go on; the exit code says whether any failed."""
    import json

    from .batch import BatchError, expand_inputs, plan_tasks, run_dask, run_local
    from .io.params_dict import params_to_dict
    from .segmentation.embedding import default_model_path

    _check_numbers(args)
    if args.jobs < 1:
        raise CliError("--jobs must be at least 1")
    if args.features:
        raise CliError("--features is for one photo; a batch uses the model")
    if args.psd:
        raise CliError("a batch writes one PSD per photo: give --psd without a path")
    if not args.out:
        raise CliError("a batch needs --out FOLDER (one folder per photo goes in it)")
    photos, missing = expand_inputs(args.photo, recursive=args.recursive, exclude=args.out)
    for item in missing:
        print(f"sss-studio: warning: no photo matches {item}", file=sys.stderr)
    if not photos:
        raise CliError("no photos to segment")
    model = args.model or str(default_model_path())
    if not Path(model).is_file():
        raise CliError(f"the model {model} was not found; pass --model PATH")
    if not args.dask:   # a wrong model is said once, not once per photo (Dask workers load their own)
        from .batch import load_model
        from .segmentation.embedding import ModelError

        try:
            load_model(str(Path(model).resolve()), not args.cpu)
        except ModelError as e:
            raise CliError(str(e)) from None
    params = _run_params(args)
    try:
        tasks = plan_tasks(photos, args.out, psd=args.psd is not None, params=params_to_dict(params),
                           model=str(Path(model).resolve()), prefer_gpu=not args.cpu,
                           layer_colours=not args.photo_colours, force=args.force)
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except BatchError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"cannot create {args.out}: {e.strerror or e}") from None

    bar = _Progress(len(tasks), quiet=args.quiet)
    failed = 0
    try:
        if args.dask:
            records = run_dask(tasks, args.dask)
        else:
            records = run_local(tasks, args.jobs, progress=bar.stage if args.jobs == 1 else None)
        for rec in records:
            failed += rec["status"] == "error"
            bar.done(rec)
            if args.json:
                print(json.dumps(rec, ensure_ascii=False), flush=True)
    except BatchError as e:
        bar.close()
        raise CliError(str(e)) from None
    bar.close()
    if not args.quiet:
        counts = bar.counts
        print(f"sss-studio: {len(tasks)} photos: {counts['ok']} segmented, {counts['skipped']} already done, "
              f"{counts['error']} failed, in {bar.elapsed():.1f} s", file=sys.stderr)
    return EXIT_ERROR if failed else 0


class _Progress:
    """Batch progress on stderr: on a terminal one line redrawn (overall, the photo's
    stage, ETA); otherwise one plain line per photo; with --quiet only failed photos."""

    WIDTH = 110   # the redrawn line, padded so that a shorter one covers a longer one

    def __init__(self, total: int, quiet: bool = False, stream=None):
        self.total, self.quiet = total, quiet
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.finished = 0
        self.counts = {"ok": 0, "skipped": 0, "error": 0}
        self.t0 = time.perf_counter()
        self._worked: list[float] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def _eta(self, current: float = 0.0) -> str:
        if not self._worked or self.finished >= self.total:
            return ""
        per = sum(self._worked) / len(self._worked)
        left = max(0.0, (self.total - self.finished - current) * per)
        return f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"

    def stage(self, task, stage: str, frac: float) -> None:
        if self.quiet or not self.tty:
            return
        overall = (self.finished + frac) / self.total
        width = 24
        fill = int(round(overall * width))
        line = (f"[{'#' * fill}{'.' * (width - fill)}] {self.finished}/{self.total} "
                f"{Path(task.photo).name}: {stage} {frac * 100:3.0f}%{self._eta(frac)}")
        self.stream.write("\r" + line[:self.WIDTH].ljust(self.WIDTH))
        self.stream.flush()

    def done(self, rec: dict) -> None:
        self.finished += 1
        self.counts[rec["status"]] += 1
        if rec["status"] == "ok":
            self._worked.append(rec["seconds"])
        if self.quiet and rec["status"] != "error":   # --quiet: errors only
            return
        what = {"ok": f"{len(rec['layers'])} layers in {rec['seconds']:.1f} s", "skipped": "already done",
                "error": f"error: {rec['error']}"}[rec["status"]]
        line = f"[{self.finished}/{self.total}] {rec['path']}: {what}{self._eta()}"
        if self.tty:
            self._clear()
        self.stream.write(f"sss-studio: {line}\n")
        self.stream.flush()

    def _clear(self) -> None:
        self.stream.write("\r" + " " * self.WIDTH + "\r")

    def close(self) -> None:
        if self.tty and not self.quiet:
            self._clear()
            self.stream.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
