"""Idle BLAS/OpenMP threads sleep when the command starts, only where that can take
effect in time, and never against a user's own setting; importing the package changes
no environment variable (sss_studio/_threads_env.py)."""

import os
import subprocess
import sys

import pytest

SHOW = ("print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('OPENBLAS_THREAD_TIMEOUT'), "
        "idle_threads_sleep())")
APPLY = "import os; from sss_studio import _threads_env; _threads_env.apply(); " \
        "from sss_studio._threads_env import idle_threads_sleep; " + SHOW


def _probe(code: str, **env: str) -> list[str]:
    e = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_importing_the_package_changes_nothing():
    # The package and its command module load nothing heavy …
    code = ("import os, sys; before = dict(os.environ); import sss_studio, sss_studio.cli; "
            "print(dict(os.environ) == before, 'numpy' in sys.modules)")
    assert _probe(code) == ["True", "False"]
    # … and the engine changes nothing beyond what its libraries do when they load (OpenCV
    # extends LD_LIBRARY_PATH).
    code = ("import os, numpy, scipy.sparse, cv2, skimage, PIL, pyamg, numba, psd_tools; before = dict(os.environ); "
            "import sss_studio.segmentation.pipeline, sss_studio.segmentation.sources, sss_studio.layers, "
            "sss_studio.io.export, sss_studio.io.project; print(dict(os.environ) == before)")
    assert _probe(code) == ["True"]


def test_set_before_numpy_loads():
    assert _probe(APPLY) == ["PASSIVE", "4", "True"]


def test_too_late_after_numpy_so_not_claimed():
    assert _probe("import numpy; " + APPLY) == ["None", "None", "False"]


@pytest.mark.parametrize("first", ["", "import numpy; "])
def test_user_setting_wins(first):
    assert _probe(first + APPLY, OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", "4" if not first else "None", "False"]


def test_preset_environment_counts_even_after_numpy():
    assert _probe("import numpy; " + APPLY, OMP_WAIT_POLICY="PASSIVE", OPENBLAS_THREAD_TIMEOUT="4") == [
        "PASSIVE", "4", "True"]


def test_the_command_sets_them():
    code = ("import os, sys; from sss_studio import cli; sys.argv = ['sss-studio', '--version']\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('OPENBLAS_THREAD_TIMEOUT'))")
    assert _probe(code)[-2:] == ["PASSIVE", "4"]
