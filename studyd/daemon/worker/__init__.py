"""The worker: claim a trial slot → ask Optuna → train → report each epoch → tell → settle the slot.

Many workers (processes, machines) serve one study at once; the queue's slot count keeps them from
overshooting its target. A background thread heartbeats the worker's rows and runs the reaper, so
a dead worker's trial is failed and its slot given back while everyone else is busy training.

Modules: `loop` (the claim loop and lifecycle), `heartbeat` (the heartbeat thread), `slot`
(serving one slot), `trial` (training one trial), `stack` (training a stack of trials), `outcomes`
(recording results, telling Optuna, settling slots), `state` and `options` (what they share).
Every database call goes through `storage/` (the queue, `trial_batch`, `trial_store`).
"""

from studyd.daemon.worker.loop import Worker
from studyd.daemon.worker.options import WorkerOptions
from studyd.daemon.worker.stack import auto_batch_trials

__all__ = ["Worker", "WorkerOptions", "auto_batch_trials"]
