"""One settings flow: defaults in `Settings`, STUDYD_ variables over them, flags over both."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studyd.cli.main import app
from studyd.daemon.worker import WorkerOptions
from studyd.settings import Settings, settings_with


@pytest.fixture
def no_studyd_env(monkeypatch):
    for name in [k for k in os.environ if k.startswith("STUDYD_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_worker_options_default_to_the_settings_defaults(no_studyd_env):
    assert WorkerOptions.from_settings(Settings()) == WorkerOptions(
        data_roots=Settings().allowed_data_roots()
    )


def test_worker_settings_come_from_studyd_variables(no_studyd_env):
    env = no_studyd_env
    env.setenv("STUDYD_WORKER_DEVICE", "cpu")
    env.setenv("STUDYD_WORKER_THREADS", "3")
    env.setenv("STUDYD_WORKER_BATCH_TRIALS", "4")
    env.setenv("STUDYD_WORKER_POLL", "0.25")
    env.setenv("STUDYD_HEARTBEAT_INTERVAL", "0.5")
    env.setenv("STUDYD_HEARTBEAT_GRACE", "7")
    env.setenv("STUDYD_REAPER_PERIOD", "2")
    env.setenv("STUDYD_DATA_DIR", "/srv/data")
    options = WorkerOptions.from_settings(Settings(), max_trials=5, once=True)
    assert options == WorkerOptions(
        device="cpu",
        max_trials=5,
        once=True,
        heartbeat=0.5,
        grace=7.0,
        poll=0.25,
        reaper_period=2.0,
        data_dir=Path("/srv/data"),
        data_roots=[Path("/srv/data")],
        threads=3,
        batch_trials=4,
    )


def test_flags_override_the_environment_and_absent_flags_do_not(no_studyd_env):
    no_studyd_env.setenv("STUDYD_WORKER_BATCH_TRIALS", "3")
    no_studyd_env.setenv("STUDYD_WORKER_DEVICE", "cpu")
    settings = settings_with(worker_batch_trials=2, worker_device=None, worker_poll=0.5)
    assert settings.worker_batch_trials == 2
    assert settings.worker_device == "cpu"
    assert settings.worker_poll == 0.5
    assert settings_with(worker_batch_trials="auto").worker_batch_trials == "auto"


def test_worker_env_carries_every_worker_setting_a_child_reads_back(no_studyd_env):
    settings = settings_with(worker_device="cpu", worker_batch_trials=2, heartbeat_interval=0.2)
    env = settings.worker_env()
    assert env["STUDYD_WORKER_DEVICE"] == "cpu" and env["STUDYD_WORKER_BATCH_TRIALS"] == "2"
    assert "STUDYD_WORKER_THREADS" not in env  # None: the child keeps its own default
    for name, value in env.items():
        no_studyd_env.setenv(name, value)
    child = Settings()
    for name in env:
        field = name.removeprefix("STUDYD_").lower()
        assert getattr(child, field) == getattr(settings, field), field


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STUDYD_WORKER_BATCH_TRIALS", "0"),
        ("STUDYD_WORKER_POLL", "0"),
        ("STUDYD_WORKER_THREADS", "x"),
    ],
)
def test_a_bad_worker_variable_is_one_line_and_exit_2(no_studyd_env, name, value):
    no_studyd_env.setenv(name, value)
    result = CliRunner().invoke(app, ["worker", "--once"])
    assert result.exit_code == 2, result.output
    assert f"invalid setting: {name}" in result.output
    assert "Traceback" not in result.output
