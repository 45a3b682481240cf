"""How one worker runs: its options, whose defaults are `Settings`' (written once, there)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studyd.settings import Settings


def _setting(name: str) -> Any:
    """A field defaulting to the `Settings` field `name`'s default (not the environment's)."""
    return field(
        default_factory=lambda: Settings.model_fields[name].get_default(call_default_factory=True)
    )


@dataclass
class WorkerOptions:
    """How one worker runs; `from_settings` fills it from `Settings` (environment and flags)."""

    device: str = _setting("worker_device")
    max_trials: int | None = None
    once: bool = False
    heartbeat: float = _setting("heartbeat_interval")
    grace: float = _setting("heartbeat_grace")
    poll: float = _setting("worker_poll")
    reaper_period: float = _setting("reaper_period")
    data_dir: Path = _setting("data_dir")
    data_roots: list[Path] = _setting("data_roots")
    threads: int | None = _setting("worker_threads")
    # Trials trained at once as one stacked model (models.batched): an int, or "auto".
    batch_trials: int | str = _setting("worker_batch_trials")
    # The `studyd serve` process that started this worker (None: a standalone worker).
    parent_pid: int | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, max_trials: int | None = None, once: bool = False
    ) -> WorkerOptions:
        """The options `settings` give, plus the two that only a command line says."""
        return cls(
            device=settings.worker_device,
            max_trials=max_trials,
            once=once,
            heartbeat=settings.heartbeat_interval,
            grace=settings.heartbeat_grace,
            poll=settings.worker_poll,
            reaper_period=settings.reaper_period,
            data_dir=settings.data_dir,
            data_roots=settings.allowed_data_roots(),
            threads=settings.worker_threads,
            batch_trials=settings.worker_batch_trials,
            parent_pid=settings.worker_parent_pid,
        )
