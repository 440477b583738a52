"""Batch segmentation: many photos, one output folder each, on one machine or a Dask cluster.

``expand_inputs`` turns files, folders and globs into a sorted list of photos;
``plan_tasks`` gives each one its output folder (named after the photo, collisions
resolved); ``process_photo`` is the per-photo function every runner calls (in this
process, in ``--jobs`` worker processes, or on Dask workers): it skips a photo whose
outputs exist with the same recorded parameters, and returns a JSON-ready record
instead of raising. No Qt, and numpy is imported only inside the functions, so a
worker process can cap its BLAS threads before it loads (``init_worker``).
"""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".ppm", ".pgm", ".jp2"}
RECORD = "layers.npz"        # the PNG stack's record: alphas, names and the parameters used


class BatchError(Exception):
    """A batch that cannot start (no photos, an output root that is a file)."""


@dataclass(frozen=True)
class PhotoTask:
    """One photo's job: where it is, where its outputs go, and how to segment it."""

    photo: str
    out: str                         # this photo's folder (PNG stack and layers.npz)
    psd: Optional[str]               # its PSD, or None
    params: dict                     # SegmenterParams as a plain dict (io.params_dict)
    model: Optional[str] = None
    prefer_gpu: bool = True
    layer_colours: bool = True
    force: bool = False


def expand_inputs(items: Iterable[str], recursive: bool = False,
                  exclude: Optional[str] = None) -> tuple[list[Path], list[str]]:
    """Files, folders (their photos; sub-folders too with ``recursive``) and glob patterns
    → (photos in a stable order without repeats, inputs that matched nothing). Nothing
    inside ``exclude`` (the output folder: a rerun must not take its layer PNGs for
    photos)."""
    found: list[Path] = []
    missing: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            walk = p.rglob("*") if recursive else p.glob("*")
            hits = sorted(q for q in walk if q.is_file() and q.suffix.lower() in PHOTO_SUFFIXES)
        elif p.is_file():
            hits = [p]
        elif glob.has_magic(item):
            hits = sorted(Path(q) for q in glob.glob(item, recursive=recursive) if Path(q).is_file())
        else:
            hits = []
        if not hits:
            missing.append(item)
        found.extend(hits)
    seen: set[str] = set()
    photos = []
    skip = os.path.realpath(exclude) + os.sep if exclude else None
    for p in found:
        key = os.path.realpath(p)
        if skip and key.startswith(skip):
            continue
        if key not in seen:
            seen.add(key)
            photos.append(p)
    return photos, missing


def output_names(photos: list[Path]) -> list[str]:
    """One folder name per photo: its stem, with the parent folder's name and then a
    number added where stems collide (shoot/a.jpg and other/a.jpg → a, other_a)."""
    names: list[str] = []
    used: set[str] = set()
    for p in photos:
        candidates = [p.stem, f"{p.parent.name}_{p.stem}" if p.parent.name else p.stem]
        name = next((c for c in candidates if c.lower() not in used), None)
        n = 2
        while name is None or name.lower() in used:
            name = f"{p.stem}_{n}"
            n += 1
        used.add(name.lower())
        names.append(name)
    return names


def plan_tasks(photos: list[Path], out_root: str, psd: bool, params: dict, **options: Any) -> list[PhotoTask]:
    root = Path(out_root)
    if root.exists() and not root.is_dir():
        raise BatchError(f"--out {root} is a file, not a folder")
    tasks = []
    for photo, name in zip(photos, output_names(photos)):
        folder = root / name
        tasks.append(PhotoTask(photo=str(photo), out=str(folder), psd=str(folder / f"{name}.psd") if psd else None,
                               params=params, **options))
    return tasks


def _photo_stamp(path: str) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_done(task: PhotoTask) -> bool:
    """The outputs exist and record the same parameters and the same photo (size and
    modification time): a rerun can skip it."""
    record = Path(task.out) / RECORD
    if not record.is_file() or (task.psd and not Path(task.psd).is_file()):
        return False
    try:
        import numpy as np

        with np.load(record) as z:
            meta = json.loads(str(z["meta"]))
    except Exception:   # damaged or foreign: redo it
        return False
    batch = meta.get("batch", {})
    as_json = lambda x: json.dumps(x, sort_keys=True, default=str)  # noqa: E731
    return (as_json(meta.get("params")) == as_json(task.params) and batch.get("photo") == _photo_stamp(task.photo)
            and batch.get("layer_colours") == task.layer_colours)


_MODELS: dict[tuple, Any] = {}   # one loaded model per worker process (or Dask worker)


def load_model(path: Optional[str], prefer_gpu: bool) -> Any:
    """The embedding model, loaded once per process (a worker keeps it between photos)."""
    from .segmentation.embedding import EmbeddingModel

    key = (path, prefer_gpu)
    if key not in _MODELS:
        _MODELS[key] = EmbeddingModel(path, prefer_gpu=prefer_gpu)
    return _MODELS[key]


def process_photo(task: PhotoTask, progress: Any = None) -> dict:
    """Segment one photo and write its outputs; a JSON-ready record, never an exception
    (but KeyboardInterrupt): status "ok", "skipped" or "error" (with the message)."""
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"path": task.photo, "out": task.out, "psd": task.psd, "status": "ok", "seconds": 0.0,
                           "layers": [], "error": None}
    try:
        if not task.force and is_done(task):
            rec["status"] = "skipped"
            return rec
        rec["worker"] = os.getpid()
        rec["layers"] = _segment_and_write(task, progress)
    except KeyboardInterrupt:
        raise
    except MemoryError:
        rec.update(status="error", error="out of memory: try a smaller --working-size")
    except Exception as e:   # one bad photo gets its line; the batch goes on
        rec.update(status="error", error=_message(e))
    finally:
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        rec["peak_mb"] = _peak_mb()
    return rec


def _peak_mb() -> Optional[float]:
    """This process's peak resident memory so far, in MB (None where it cannot be read)."""
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
    except (ImportError, OSError):
        return None


def _message(e: BaseException) -> str:
    from .io.export import ExportError
    from .io.image import ImageLoadError

    if isinstance(e, (ImageLoadError, ExportError, ValueError)):
        return str(e)
    if isinstance(e, OSError):
        return f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}".lstrip(": ")
    return f"{type(e).__name__}: {e}"


def _segment_and_write(task: PhotoTask, progress: Any) -> list[str]:
    from .io.export import write_png_stack, write_psd
    from .io.image import read_image
    from .io.params_dict import params_from_dict
    from .segmentation.params import SegmenterParams
    from .segmentation.pipeline import Segmenter

    image, info = read_image(task.photo)
    params = params_from_dict(task.params, SegmenterParams.for_mode(task.params.get("mode", "fast")))
    seg = Segmenter(params, embedding_model=load_model(task.model, task.prefer_gpu))
    seg.set_image(image)
    result = seg.run(progress=progress)
    names = result.layer_names
    record = dict(task.params)
    write_png_stack(task.out, image, result.alphas, names, params=record, metadata=info.metadata,
                    layer_colours=task.layer_colours,
                    extra_meta={"batch": {"photo": _photo_stamp(task.photo), "layer_colours": task.layer_colours}})
    if task.psd:
        write_psd(task.psd, image, result.alphas, names, metadata=info.metadata, layer_colours=task.layer_colours)
    return list(names)


# -- runners --------------------------------------------------------------------------

def init_worker(blas_threads: int) -> None:
    """A --jobs worker process: N × threads ≤ cores, and Ctrl+C is the parent's to handle."""
    import signal

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(blas_threads)
    from . import _threads_env

    _threads_env.apply()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local(tasks: list[PhotoTask], jobs: int, progress: Any = None) -> Iterator[dict]:
    """Records as photos finish: in this process (jobs = 1, with per-stage progress)
    or in ``jobs`` worker processes, each with cores // jobs BLAS threads."""
    if jobs <= 1:
        for task in tasks:
            yield process_photo(task, None if progress is None else (lambda s, f, t=task: progress(t, s, f)))
        return
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = mp.get_context("spawn").Pool(jobs, initializer=init_worker, initargs=(threads,), maxtasksperchild=None)
    try:
        for rec in pool.imap_unordered(process_photo, tasks):
            yield rec
        pool.close()
    except BaseException:
        pool.terminate()   # exports are atomic: a killed worker leaves only temporary files …
        pool.join()
        remove_temporary_files(tasks)   # … and they go now
        raise
    finally:
        pool.join()


def remove_temporary_files(tasks: list[PhotoTask]) -> None:
    """The temporary files and folders that stopped workers left beside the outputs."""
    from .io.export import remove_stale_parts

    for task in tasks:
        out = Path(task.out)
        remove_stale_parts(out.parent, out.name)
        if task.psd:
            remove_stale_parts(Path(task.psd).parent, Path(task.psd).name)


def run_dask(tasks: list[PhotoTask], address: str) -> Iterator[dict]:
    """Records as photos finish on an existing Dask scheduler's workers. The workers read
    the photos and write the outputs: the paths must be reachable from them."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise BatchError("--dask needs the dask extra: pip install 'sss_studio[dask]'") from None
    try:
        client = Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise BatchError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    try:
        futures = client.map(process_photo, tasks, pure=False)
        try:
            for fut in as_completed(futures, loop=client.loop):
                yield fut.result()
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        client.close()
