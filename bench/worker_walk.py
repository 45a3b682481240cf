"""The worker's walk: which project modules one slot enters, from a claimed slot to a recorded
trial (issue 25's measure of how far a reader must follow the worker's calls).

Method: `sys.setprofile` over one `SlotServer.serve` call (a study's second slot, so its spec,
data and Optuna study are already loaded), from its start to the return of the store's
`finish_trial_slot` (the trial is told and its slot counted), on a study trained for one epoch
on `digits`; `--batch-trials 1` (a lone trial, unbatched) or `auto` (a stack of two there). The
worker wing (`studyd/daemon/worker/`) is followed call by call; any other project module
(`studyd/`, `storage/`, `models/`) it calls is one *stop* and is not followed inside, except for
calls that climb back into the worker wing (callbacks), which are stops and followed again.
Reported: the distinct modules entered, the stops (calls that cross from one module into
another), the *re-entries* (stops into a module entered before: stops − modules) and the
*returns*: stops into a module that is still on the call stack, i.e. control climbing back up
into a caller's module (a callback, or A → B → A ping-pong); 0 for a walk that only goes down,
as Optuna's `_run_trial` → `tell` → storage. Also the stops counted once per call edge
(module → module.function), which a per-epoch callback does not multiply.

    PYTHONPATH=$PWD python -m bench.worker_walk [--store sqlite|memory] [--batch-trials 1|auto]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("studyd", "storage", "models")
WING = "studyd/daemon/worker/"
SPEC = (
    "name: walk\nmodel: {width: 8, depth: 1}\ndropout: {variants: [standard]}\n"
    "training: {epochs: 1}\nsearch: {n_trials: 3, pruner: none}"
)


def _module(filename: str) -> str | None:
    try:
        rel = Path(filename).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return None
    return rel if rel.split("/", 1)[0] in ROOMS and rel.endswith(".py") else None


class Walk:
    """The profile hook: a stack of the project modules of live frames, and the stops."""

    def __init__(self) -> None:
        self.stack: list[str | None] = []
        self.stops: list[tuple[str, str, str]] = []  # (from module, to module, to function)
        self.climbs: list[tuple[str, str, str]] = []  # stops into a module still on the stack
        self.recorded = False  # the first trial's slot is counted: the walk ends

    def _ended(self, frame) -> bool:  # noqa: ANN001
        # The trial is recorded once its slot is counted (`finish_trial_slot` returned).
        if frame.f_code.co_name == "finish_trial_slot" and _module(frame.f_code.co_filename):
            module = _module(frame.f_code.co_filename) or ""
            return module.startswith("storage/")
        return False

    def __call__(self, frame, event, _arg) -> None:  # noqa: ANN001 - sys.setprofile's signature
        if self.recorded:
            return
        if event == "call":
            module = _module(frame.f_code.co_filename)
            caller = next((m for m in reversed(self.stack) if m is not None), None)
            self.stack.append(module)
            if module is None or module == caller:
                return
            followed = caller is None or caller.startswith(WING)
            if followed or module.startswith(WING):
                stop = (caller or "-", module, frame.f_code.co_name)
                self.stops.append(stop)
                if module in self.stack[:-1]:
                    self.climbs.append(stop)
        elif event == "return" and self.stack:
            self.stack.pop()
            self.recorded = self._ended(frame)


def _report(walk: Walk, listing: bool) -> dict[str, int]:
    entered: list[str] = []
    for _, module, _ in walk.stops:
        if module not in entered:
            entered.append(module)
    edges = {(a, b, f) for a, b, f in walk.stops}
    numbers = {
        "modules": len(entered),
        "stops": len(walk.stops),
        "re-entries": len(walk.stops) - len(entered),
        "returns": len(walk.climbs),
        "distinct returns": len(set(walk.climbs)),
        "distinct call edges": len(edges),
        "edge returns": len(edges) - len(entered),
    }
    for name, n in numbers.items():
        print(f"{name:>20}: {n}")
    counts = Counter(b for _, b, _ in walk.stops)
    for module in entered:
        print(f"  {counts[module]:>4} × {module}")
    if listing:
        for a, b, f in walk.stops:
            print(f"    {a} -> {b}:{f}")
        print("  returns:")
        for a, b, f in walk.climbs:
            print(f"    {a} -> {b}:{f}")
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--batch-trials", default="1", help="1 (default), K or auto")
    parser.add_argument("--list", action="store_true", help="print every stop")
    args = parser.parse_args()
    import studyd.daemon.worker.slot as slot_module
    from studyd.daemon.worker import WorkerOptions
    from studyd.spec import load_spec

    spec = load_spec(SPEC)
    with tempfile.TemporaryDirectory() as tmp:
        batch = args.batch_trials if args.batch_trials == "auto" else int(args.batch_trials)
        options = WorkerOptions(
            device="cpu",
            once=True,
            heartbeat=0.5,
            grace=30,
            poll=0.05,
            data_dir=Path(tmp),
            batch_trials=batch,
        )
        worker = _worker(args.store, Path(tmp), spec, options)
        walk = Walk()
        serve = slot_module.SlotServer.serve
        calls = 0

        def traced(self, record):  # noqa: ANN001, ANN202
            nonlocal calls
            calls += 1
            if calls != 2:
                return serve(self, record)
            sys.setprofile(walk)
            try:
                return serve(self, record)
            finally:
                sys.setprofile(None)

        slot_module.SlotServer.serve = traced
        try:
            worker.run()
        finally:
            slot_module.SlotServer.serve = serve
    print(f"store: {args.store}, --batch-trials {args.batch_trials}; one slot of {SPEC!r}")
    _report(walk, args.list)


def _worker(store: str, tmp: Path, spec, options):  # noqa: ANN001, ANN202
    from studyd.daemon.service import submit_spec, submit_to
    from studyd.daemon.worker import Worker

    if store == "memory":
        from storage.memory_store import MemoryWorkerStore

        memory = MemoryWorkerStore()
        submit_to(memory, spec)
        return Worker.on(memory, options)
    from storage.engine import make_engine
    from storage.migrate import ensure_schema
    from storage.optuna_storage import make_optuna_storage

    url = f"sqlite:///{tmp}/walk.db"
    ensure_schema(url)
    engine, storage = make_engine(url), make_optuna_storage(url)
    submit_spec(engine, storage, spec)
    return Worker(engine, storage, options)


if __name__ == "__main__":
    sys.exit(main())
