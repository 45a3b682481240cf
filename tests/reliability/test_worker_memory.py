"""Issue 15 (item 6, the worker's part): a worker gives back the memory of a big trial.

A real `studyd worker` trains one large network (≈ 8.5 M parameters: weights, gradients and Adam
moments alone ≈ 140 MB) and goes idle; its resident set must fall back most of the way to where
it was before the trial, instead of holding the trial's peak for good.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_harness import start_worker, stop_process, wait_for

from storage import queue
from storage.engine import make_engine
from storage.migrate import upgrade
from storage.optuna_storage import make_optuna_storage
from studyd.daemon.service import submit_spec
from studyd.spec import validate_spec

pytestmark = [pytest.mark.slow, pytest.mark.process]

BIG = {
    "name": "big",
    "dataset": {"name": "digits"},
    "model": {"depth": 3, "width": 2048},
    "dropout": {"variants": ["standard"], "placements": ["hidden"]},
    "training": {"epochs": 1, "batch_size": 64},
    "search": {"n_trials": 1, "sampler": "random", "pruner": "none"},
}


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of `pid`, in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_worker_gives_back_a_big_trials_memory(tmp_path, figure):
    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    upgrade(url)
    engine = make_engine(url)
    # A long grace: a big network's epoch on a loaded machine can starve the heartbeat thread.
    worker = start_worker(url, tmp_path / "worker.log", grace=60.0, extra=["--batch-trials", "1"])
    try:
        wait_for(lambda: queue.list_workers(engine), 400, what="the worker to register")
        # Warm: a tiny study first, so imports and the data are in the baseline.
        small = dict(BIG, name="small", model={"depth": 1, "width": 8})
        first = submit_spec(engine, make_optuna_storage(url), validate_spec(small))
        wait_for(lambda: queue.get_study(engine, first.id).state == "done", 300, what="warm-up")
        before = memory_kb(worker.pid)["VmRSS"]
        big = submit_spec(engine, make_optuna_storage(url), validate_spec(BIG))
        wait_for(lambda: queue.get_study(engine, big.id).state == "done", 600, what="big trial")
        wait_for(lambda: queue.get_study(engine, big.id).test_score is not None, 300, what="score")
        peak = memory_kb(worker.pid)["VmHWM"]
        assert peak - before > 100 * 1024, "the big trial did not grow the worker: proves nothing"

        def fell_back() -> int | None:
            rss = memory_kb(worker.pid)["VmRSS"]
            return rss if rss - before < (peak - before) / 2 else None

        # Given back once the slot and the test run after it are over (seconds).
        after = wait_for(fell_back, 120, every=0.5, what="the worker's memory to fall back")
    finally:
        stop_process(worker)
    figure(rss_before_mb=before // 1024, peak_mb=peak // 1024, rss_after_mb=after // 1024)
