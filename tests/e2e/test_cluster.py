"""A cluster on one machine: PostgreSQL, `studyd serve --no-workers`, workers, `studyd proxy`.

Every component is a separate OS process started from the `studyd` command, the way machines of a
cluster would run them; the test talks to them over HTTP and gRPC only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest

from storage.optuna_storage import make_optuna_storage
from studyd.client.readiness import (
    ProcessExited,
    free_port,
    listens,
    stop_process,
    wait_until_ready,
)

STUDYD = [sys.executable, "-m", "studyd.cli.main"]
WORKERS = 4
STUDIES = 3
TRIALS_PER_STUDY = 6
# Torch in each of the 4 workers would otherwise start a thread per core on a 2-core machine.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FINAL_STATES = {"done", "failed", "cancelled"}


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    try:
        wait_until_ready(lambda: listens(port), [process], timeout=timeout, every=0.2)
    except ProcessExited:
        pytest.fail(f"exited with {process.returncode} before listening:\n{log.read_text()}")
    except TimeoutError:
        pytest.fail(f"nothing listened on {port} within {timeout}s:\n{log.read_text()}")


@contextmanager
def studyd_process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator:
    """`studyd ARGS` as its own OS process; SIGTERM (then SIGKILL) on the way out."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*STUDYD, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=log.parent,
        )
    try:
        yield process
    finally:
        stop_process(process, timeout=30)


def proxy_args(database_url: str, port: int) -> list[str]:
    return ["proxy", "--database-url", database_url, "--host", "127.0.0.1", "--port", str(port)]


@contextmanager
def proxy_process(database_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / f"proxy-{port}.log"
    with studyd_process(proxy_args(database_url, port), log) as process:
        wait_for_port(port, process, log)
        yield f"grpc://127.0.0.1:{port}"


@pytest.mark.process
def test_proxy_serves_optuna_studies_that_land_in_the_database(sqlite_url, tmp_path):
    with proxy_process(sqlite_url, tmp_path) as grpc_url:
        via_proxy = make_optuna_storage(grpc_url)
        study = optuna.create_study(study_name="through-proxy", storage=via_proxy)
        study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=5)
        best_via_proxy = study.best_value
    direct = optuna.load_study(study_name="through-proxy", storage=make_optuna_storage(sqlite_url))
    states = [t.state for t in direct.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 5
    assert direct.best_value == best_via_proxy


@pytest.mark.process
def test_proxy_refuses_to_proxy_another_proxy(tmp_path):
    result = subprocess.run(
        [*STUDYD, "proxy", "--database-url", "grpc://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "not another proxy" in result.stderr


def small_spec(name: str, seed: int) -> dict[str, Any]:
    """A tiny MLP on the bundled digits, 1-2 epochs: seconds per trial on one CPU thread."""
    return {
        "name": name,
        "dataset": {"name": "digits", "seed": 0},
        "model": {"depth": 1, "width": [16, 64]},
        "dropout": {"variants": ["none", "standard"], "rate": [0.1, 0.5], "placements": ["hidden"]},
        "training": {"epochs": [1, 2], "batch_size": 128, "optimizer": "adam", "lr": 0.01},
        "search": {
            "sampler": "random",
            "pruner": "none",
            "n_trials": TRIALS_PER_STUDY,
            "seed": seed,
        },
    }


def submit_at_once(api_url: str, specs: list[dict[str, Any]]) -> list[int]:
    """POST every spec from its own thread, released together, as separate users would."""
    barrier = threading.Barrier(len(specs))
    ids: dict[int, int] = {}
    errors: list[BaseException] = []

    def submit(index: int) -> None:
        try:
            with httpx.Client(base_url=api_url, timeout=60) as client:
                barrier.wait()
                response = client.post("/studies", json=specs[index])
                assert response.status_code == 201, response.text
                ids[index] = response.json()["id"]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(specs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [ids[i] for i in range(len(specs))]


def wait_until_final(api_url: str, ids: list[int], logs: list[Path], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=api_url, timeout=30) as client:
        while True:
            studies = [client.get(f"/studies/{i}").raise_for_status().json() for i in ids]
            if all(s["state"] in FINAL_STATES for s in studies):
                return studies
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in logs)
                progress = [(s["id"], s["state"], s["finished"]) for s in studies]
                pytest.fail(f"studies not finished after {timeout}s: {progress}\n{tails}")
            time.sleep(1)


@pytest.mark.slow
@pytest.mark.process
@pytest.mark.postgres
@pytest.mark.timeout(900)
@pytest.mark.parametrize("via", ["database", "grpc-proxy"])
def test_four_worker_processes_finish_three_studies_with_exact_trial_counts(
    via, postgres_url, tmp_path
):
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    with ExitStack() as stack:
        # Everything starts at once, as a cluster does: schema set-up is safe under concurrency.
        serve_log = tmp_path / "serve.log"
        serve = stack.enter_context(
            studyd_process(
                ["serve", "--no-workers", "--database-url", postgres_url]
                + ["--host", "127.0.0.1", "--port", str(api_port), "--log-level", "warning"],
                serve_log,
            )
        )
        storage_args: list[str] = []
        if via == "grpc-proxy":
            proxy_port = free_port()
            proxy_log = tmp_path / "proxy.log"
            proxy = stack.enter_context(
                studyd_process(proxy_args(postgres_url, proxy_port), proxy_log)
            )
            storage_args = ["--storage", f"grpc://127.0.0.1:{proxy_port}"]
        logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
        workers = [
            stack.enter_context(
                studyd_process(
                    ["worker", "--database-url", postgres_url, "--device", "cpu", "--poll", "0.25"]
                    + storage_args,
                    log,
                    env=ONE_THREAD,
                )
            )
            for log in logs
        ]
        wait_for_port(api_port, serve, serve_log)
        if via == "grpc-proxy":
            wait_for_port(proxy_port, proxy, proxy_log)
        ids = submit_at_once(api_url, [small_spec(f"cluster-{k}", seed=k) for k in range(STUDIES)])
        studies = wait_until_final(api_url, ids, [serve_log, *logs], timeout=600)

        for study in studies:
            assert study["state"] == "done", study
            assert study["target_trials"] == TRIALS_PER_STUDY
            assert study["finished"] == study["claimed"] == TRIALS_PER_STUDY, study
            counts = study["trial_counts"]
            # Besides the counted runs, a proposal of a run the study already has is told its
            # known result without counting (`duplicate_of`): checked against Optuna below.
            assert counts["complete"] + counts["pruned"] >= TRIALS_PER_STUDY, counts
            assert counts["running"] == counts["waiting"] == counts["fail"] == 0, counts

        for worker in workers:
            worker.terminate()
        for worker, log in zip(workers, logs, strict=True):
            assert worker.wait(timeout=60) == 0, log.read_text()[-3000:]

    # What the API said is what the database holds: Optuna's own view of every study.
    storage = make_optuna_storage(postgres_url)
    served_by: Counter[int] = Counter()
    for study in studies:
        trials = optuna.load_study(study_name=study["optuna_name"], storage=storage).trials
        counted = [t for t in trials if "duplicate_of" not in t.user_attrs]
        repeats = [t for t in trials if "duplicate_of" in t.user_attrs]
        states = Counter(t.state for t in counted)
        assert states == Counter({optuna.trial.TrialState.COMPLETE: TRIALS_PER_STUDY}), states
        # Four workers asking at once can propose one run twice: the repeat takes the counted
        # run's result (same run_key), and the API's counts are the two together.
        run_keys = {t.user_attrs["run_key"] for t in counted}
        assert len(run_keys) == TRIALS_PER_STUDY
        for t in repeats:
            assert t.state == optuna.trial.TrialState.COMPLETE
            assert t.user_attrs["run_key"] in run_keys
        api_counts = study["trial_counts"]
        assert api_counts["complete"] + api_counts["pruned"] == len(trials), api_counts
        served_by.update(t.user_attrs["worker_id"] for t in counted)
    assert len(served_by) >= 2, f"the trials should spread over the workers: {served_by}"
