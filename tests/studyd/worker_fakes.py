"""The worker's fast layer: a real `Worker` on the in-memory store with a stub trainer.

`StubTrainer` is `TorchTrainer` with its training replaced: each trial "trains" in microseconds,
reports a made-up curve epoch by epoch through the worker's own `on_epoch` (so reports, pruning
and stops run as they do for real), and records the same attributes a real trial records but the
diagnostics. `hook(epoch, trials)` runs before each epoch's report: a test raises or stops there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.config import ModelConfig, TrainConfig
from models.data import DatasetSplits
from models.training import EpochMetrics, TrainResult
from storage.memory_store import MemoryWorkerStore
from studyd.daemon.records import result_attrs
from studyd.daemon.service import submit_to
from studyd.daemon.training import TorchTrainer
from studyd.daemon.worker import Worker, WorkerOptions
from studyd.spec import StudySpec, load_spec


@dataclass
class StubTrainer(TorchTrainer):
    """Trains nothing: val_acc rises with the epoch and falls with the distance of the first
    dropout rate from 0.3, so the pruner and the sampler have something to compare."""

    device: str = "cpu"
    hook: Callable[[int, int], None] = lambda epoch, trials: None
    calls: list[tuple[int, bool]] = field(default_factory=list)  # (trials, stacked) per training

    def train(
        self,
        models: Sequence[ModelConfig],
        trains: Sequence[TrainConfig],
        data: DatasetSplits,
        *,
        stacked: bool,
        on_epoch: Callable[[list[EpochMetrics | None]], list[bool]],
        interrupt: Callable[[], bool],
    ) -> list[TrainResult]:
        self.calls.append((len(models), stacked))
        histories: list[list[EpochMetrics]] = [[] for _ in models]
        live = [True] * len(models)
        for epoch in range(max(t.epochs for t in trains)):
            if interrupt():
                break
            self.hook(epoch, len(models))
            metrics: list[EpochMetrics | None] = []
            for k, (model, train) in enumerate(zip(models, trains, strict=True)):
                if not live[k] or epoch >= train.epochs:
                    metrics.append(None)
                    continue
                m = _metrics(model, epoch)
                histories[k].append(m)
                metrics.append(m)
            stops = on_epoch(metrics)
            live = [a and not s for a, s in zip(live, stops, strict=True)]
            if not any(live):
                break
        return [TrainResult(model=None, history=h, param_count=100) for h in histories]  # type: ignore[arg-type]

    def outcome(
        self, result: TrainResult, pruned: bool, data: DatasetSplits, seed: int
    ) -> dict[str, Any]:
        return result_attrs(result)


def _metrics(model: ModelConfig, epoch: int) -> EpochMetrics:
    acc = min(0.99, 0.5 + 0.1 * epoch - abs(model.layer_rates()[0] - 0.3))
    return EpochMetrics(epoch, 1 - acc, acc + 0.02, 1 - acc, acc, 0.001)


def options(tmp_path, **kw: Any) -> WorkerOptions:
    """A worker that stops once the queue is empty, quick to notice everything."""
    base = {"device": "cpu", "once": True, "heartbeat": 0.2, "grace": 30, "poll": 0.05}
    return WorkerOptions(data_dir=tmp_path, **{**base, **kw})


def submitted(store: MemoryWorkerStore, text: str) -> tuple[StudySpec, int, str]:
    """Submit the spec `text` (YAML) the way `POST /studies` does: (spec, id, Optuna name)."""
    spec = load_spec(text)
    record = submit_to(store, spec)
    return spec, record.id, record.optuna_name


def worker(store: MemoryWorkerStore, trainer: StubTrainer, tmp_path, **kw: Any) -> Worker:
    return Worker.on(store, options(tmp_path, **kw), trainer=trainer)
