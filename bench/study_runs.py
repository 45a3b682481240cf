"""One finished study as the benches compare it: best, pruned fraction, epochs, time to target."""

from __future__ import annotations

from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

# "Within 0.5 points" of a reference best: what counts as a good answer.
TOLERANCE = 0.005


@dataclass
class StudyRun:
    best: float
    pruned: float  # fraction of trials
    epochs: int
    wall: float  # first trial's start to last trial's end
    curve: list[tuple[float, int, float]]  # (seconds, epochs so far, best so far) per trial end
    # The whole study as the bench timed it: until the way's run returned (for studyd, the
    # test score trained after `done` included) ...
    whole: float | None = None
    # ... and submission to `done` (the hand-written study has no test run: its whole).
    to_done: float | None = None

    def to_target(self, target: float) -> tuple[float, int] | None:
        """(seconds, epochs) when the best first reaches `target`; None when it never does."""
        return next(((s, e) for s, e, best in self.curve if best >= target), None)

    @property
    def seconds_per_epoch(self) -> float:
        return self.wall / max(self.epochs, 1)


def study_run(trials: list[FrozenTrial]) -> StudyRun:
    """Trials in the order they ended; epochs are reports (one per trained epoch)."""
    start = min(t.datetime_start for t in trials)
    ended = sorted(trials, key=lambda t: t.datetime_complete)
    best, epochs, curve = float("-inf"), 0, []
    for t in ended:
        epochs += len(t.intermediate_values)
        if t.state == TrialState.COMPLETE and t.value is not None:
            best = max(best, t.value)
        curve.append(((t.datetime_complete - start).total_seconds(), epochs, best))
    pruned = sum(t.state == TrialState.PRUNED for t in trials) / len(trials)
    return StudyRun(best, pruned, epochs, curve[-1][0], curve)
