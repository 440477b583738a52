"""Runs size their thread pools to the cores other programs leave free."""

import subprocess
import sys
import time

import numba
import pytest

from sss_studio.segmentation.cpu_budget import busy_cores, free_cores, thread_budget, usable_cores


def test_free_cores_is_one_while_other_programs_hold_every_core():
    n = usable_cores()
    spin = "import time\nt = time.time()\nwhile time.time() - t < 20: pass\n"
    rivals = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(n)]
    try:
        time.sleep(0.5)
        busy = busy_cores(0.3)
        assert busy is not None and busy >= n - 0.6
        assert free_cores(0.3) == 1
    finally:
        for p in rivals:
            p.kill()
            p.wait()


def test_free_cores_stays_within_the_usable_cores():
    assert 1 <= free_cores() <= usable_cores()


def test_thread_budget_limits_numba_and_blas_and_restores_them():
    from threadpoolctl import threadpool_info

    before = numba.get_num_threads()
    with thread_budget(1):
        assert numba.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("threads", [1, 2])
def test_a_run_reports_the_threads_it_used(threads):
    from sss_studio.segmentation.pipeline import Segmenter
    from synthetic import quick_params, soft_regions

    image, features, _ = soft_regions(32, 40)
    seg = Segmenter(quick_params(layers=2), threads=threads)
    seg.set_image(image, features)
    assert seg.run().threads == threads


def test_this_process_own_threads_do_not_count_as_other_programs():
    import threading

    stop = threading.Event()

    def spin():
        import numpy as np

        a = np.random.default_rng(0).random((300, 300))
        while not stop.is_set():
            a @ a

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.1)
        busy = busy_cores(0.3)
    finally:
        stop.set()
        t.join()
    assert busy is not None and busy < 0.9    # the spinning thread is this process's own
