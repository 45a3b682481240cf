"""A worker whose Optuna storage is `studyd proxy` rides out the proxy dying and coming back."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter

import pytest
from optuna.trial import TrialState
from test_cluster import free_port, proxy_args, wait_for_port
from worker_harness import STUDYD, Cluster, wait_for

from storage import queue

pytestmark = [pytest.mark.slow, pytest.mark.process]

SPEC = """
name: e2e-proxy
dataset: digits
model: {depth: 1, width: [8, 32]}
dropout: {variants: [standard], rate: [0.1, 0.5]}
training: {epochs: 3, batch_size: 64}
search: {sampler: random, pruner: none, n_trials: 8, seed: 0}
"""


def _start_proxy(cluster: Cluster, port: int, n: int) -> subprocess.Popen:
    log = cluster.tmp / f"proxy-{n}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*STUDYD, *proxy_args(cluster.url, port)], stdout=out, stderr=subprocess.STDOUT
        )
    wait_for_port(port, process, log)
    return process


def test_killing_and_restarting_the_proxy_mid_study_loses_and_duplicates_nothing(
    sqlite_url, tmp_path
):
    cluster = Cluster(sqlite_url, tmp_path)
    proxies: list[subprocess.Popen] = []
    try:
        record = cluster.submit(SPEC)
        port = free_port()
        proxies.append(_start_proxy(cluster, port, 0))
        worker = cluster.start_worker("--storage", f"grpc://127.0.0.1:{port}", "--once")

        def complete() -> int:
            return sum(t.state == TrialState.COMPLETE for t in cluster.trials(record))

        wait_for(lambda: complete() >= 2, 180, "two trials through the proxy")
        proxies[0].send_signal(signal.SIGKILL)
        proxies[0].wait()
        down_at = time.monotonic()
        time.sleep(4)  # the worker meets the dead proxy mid-study
        proxies.append(_start_proxy(cluster, port, 1))
        assert cluster.wait_exit(worker, 240) == 0, cluster.log(0)
        print(f"study done {time.monotonic() - down_at:.1f} s after the proxy was killed")

        done = queue.get_study(cluster.engine, record.id)
        assert done.state == "done" and done.finished == done.claimed == 8, cluster.log(0)
        states = Counter(t.state for t in cluster.trials(record))
        assert states[TrialState.COMPLETE] == 8, (states, cluster.log(0))
        assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0, states
        assert "could not train" not in cluster.log(0)
    finally:
        for proxy in proxies:
            proxy.kill()
            proxy.wait()
        cluster.close()
