"""The worker: claim a trial slot → ask Optuna → train → report each epoch → tell → settle the slot.

Many workers (processes, machines) serve one study at once; the queue's slot count keeps them from
overshooting its target. A background thread heartbeats the worker's rows and runs the reaper, so
a dead worker's trial is failed and its slot given back while everyone else is busy training.

Modules: `loop` (the claim loop and lifecycle), `heartbeat` (the heartbeat thread), `slot`
(serving one claimed slot), `sizing` (how many trials a slot trains together), `trials` (the one
trial path, a lone trial being a stack of one, and its error ladder), `slot_end` (how a slot
ends, from a trial's result record `results.TrialResult`), `deleted` (a study deleted under its
trials), `repeats` (runs the study already has), `memory`, `state` and `options` (what they
share). Every database call goes through one `storage.worker_store`
`WorkerStore`; training goes through an injected `trials.Trainer`
(`studyd.daemon.training.TorchTrainer`).
"""

from studyd.daemon.worker.loop import Worker
from studyd.daemon.worker.options import WorkerOptions
from studyd.daemon.worker.sizing import auto_batch_trials

__all__ = ["Worker", "WorkerOptions", "auto_batch_trials"]
