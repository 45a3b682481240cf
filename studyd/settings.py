"""All runtime configuration in one place (env prefix STUDYD_), passed in as values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The settings a `studyd worker` runs with; `studyd serve` hands its own to the workers it starts.
WORKER_SETTINGS = (
    "worker_device",
    "worker_threads",
    "worker_batch_trials",
    "worker_poll",
    "heartbeat_interval",
    "heartbeat_grace",
    "reaper_period",
)


class Settings(BaseSettings):
    """Settings shared by the daemon, the worker, the API and the CLI client."""

    model_config = SettingsConfigDict(env_prefix="STUDYD_", extra="ignore")

    # Server side
    database_url: str = "sqlite:///./studyd.db"
    api_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1024 * 1024
    # Threads serving the API's routes. anyio's default, 40, thrashed the GIL: on 2 cores a page
    # cost 46 ms of CPU with 40 threads, 12 with 2-8 (wrk, 50 connections); 4 suits both backends.
    api_threads: int = Field(default=4, ge=1, le=256)
    data_dir: Path = Path("./data")
    # npz:/csv:/IDX paths a spec names must resolve inside one of these (data_dir when empty).
    data_roots: list[Path] = Field(default_factory=list)
    # Worker heartbeats: period, seconds before a silent worker is reaped, reaper period.
    heartbeat_interval: float = 5.0
    heartbeat_grace: float = 30.0
    reaper_period: float = 10.0

    # Worker side
    # cuda:N, cpu or auto (CUDA if present).
    worker_device: str = "auto"
    # torch CPU threads; None: 1 on a CPU device, since several CPU workers per machine with
    # oversubscribed OpenMP threads were measured 3x slower on 2 cores; torch's default on CUDA.
    worker_threads: int | None = Field(default=None, ge=1)
    # Trials trained at once as one stacked model (models.batched): K, or auto.
    worker_batch_trials: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # Seconds between claims while the queue is empty.
    worker_poll: float = Field(default=1.0, ge=0.05)
    # Set by `studyd serve` for the workers it embeds: a worker whose parent is no longer this
    # process (serve was killed) stops, so it never outlives its serve.
    worker_parent_pid: int | None = None

    # Client side
    url: str = "http://127.0.0.1:8000"

    def allowed_data_roots(self) -> list[Path]:
        """Resolved roots user data files may come from."""
        roots = self.data_roots or [self.data_dir]
        return [Path(r).expanduser().resolve() for r in roots]

    # Submit-time limits. The memory one worker may need to train a spec's largest
    # network (parameters, Adam state and a batch's activations, times a stack of trials): a
    # spec over it is refused with a 422. 2 GiB suits a small machine; a GPU node may raise it.
    max_train_bytes: int = Field(default=2 * 1024**3, ge=1)

    def worker_env(self) -> dict[str, str]:
        """The worker settings as STUDYD_ variables, for a worker process started from here."""
        values = {name: getattr(self, name) for name in WORKER_SETTINGS}
        return {f"STUDYD_{k.upper()}": str(v) for k, v in values.items() if v is not None}


def settings_with(**overrides: Any) -> Settings:
    """The environment's settings with every override that is not None on top (CLI flags)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
