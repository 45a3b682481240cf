"""All runtime configuration in one place (env prefix STUDYD_), passed in as values."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    heartbeat_interval: float = 5.0
    heartbeat_grace: float = 30.0
    reaper_period: float = 10.0

    # Client side
    url: str = "http://127.0.0.1:8000"

    def allowed_data_roots(self) -> list[Path]:
        """Resolved roots user data files may come from."""
        roots = self.data_roots or [self.data_dir]
        return [Path(r).expanduser().resolve() for r in roots]

    # Submit-time limits (issue 15). The memory one worker may need to train a spec's largest
    # network (parameters, Adam state and a batch's activations, times a stack of trials): a
    # spec over it is refused with a 422. 2 GiB suits a small machine; a GPU node may raise it.
    max_train_bytes: int = Field(default=2 * 1024**3, ge=1)
