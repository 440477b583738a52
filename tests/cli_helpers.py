"""Running the command as a user does: a real process, its output captured."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def run_cli(*args, cwd=None, env_extra=None, timeout=600):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "sss_studio", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def write_small_photo(folder: Path):
    """The synthetic 56×40 photo with its features (photo.png, feats.npy, feats.png) in
    ``folder``; returns the true alphas."""
    from synthetic import soft_regions

    image, feats, truth = soft_regions(40, 56)
    Image.fromarray((image * 255).round().astype(np.uint8)).save(folder / "photo.png")
    np.save(folder / "feats.npy", feats)
    Image.fromarray((feats * 255).round().astype(np.uint8)).save(folder / "feats.png")
    return truth
