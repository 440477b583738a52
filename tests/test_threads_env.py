"""The package makes idle BLAS/OpenMP threads sleep, only where it can do so in time,
and never overrides a user's own setting (sss_studio/_threads_env.py)."""

import os
import subprocess
import sys

import pytest

PROBE = ("import os, sss_studio; from sss_studio._threads_env import idle_threads_sleep; "
         "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('OPENBLAS_THREAD_TIMEOUT'), idle_threads_sleep())")


def _probe(code: str, **env: str) -> list[str]:
    e = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_set_before_numpy_loads():
    assert _probe(PROBE) == ["PASSIVE", "4", "True"]


def test_too_late_after_numpy_so_not_claimed():
    assert _probe("import numpy; " + PROBE) == ["None", "None", "False"]


@pytest.mark.parametrize("first", ["", "import numpy; "])
def test_user_setting_wins(first):
    assert _probe(first + PROBE, OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", "4" if not first else "None", "False"]


def test_preset_environment_counts_even_after_numpy():
    assert _probe("import numpy; " + PROBE, OMP_WAIT_POLICY="PASSIVE", OPENBLAS_THREAD_TIMEOUT="4") == [
        "PASSIVE", "4", "True"]
