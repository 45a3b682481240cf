"""The demo's summary waits for the test score: a done study is scored a little later."""

from __future__ import annotations

from studyd.cli.watch import with_test_score


class ScoredLater:
    """The API's study: `done` at once, its test score after `polls` more reads."""

    def __init__(self, polls: int) -> None:
        self.polls = polls

    def study(self, study_id: int) -> dict:
        self.polls -= 1
        return {"id": study_id, "state": "done", "test_score": 0.97 if self.polls <= 0 else None}


def test_a_done_study_is_read_again_until_its_test_score_lands():
    api = ScoredLater(polls=3)
    study = with_test_score(api, {"id": 1, "state": "done", "test_score": None}, 0.0, wait_s=5)
    assert study["test_score"] == 0.97


def test_the_wait_ends_at_its_deadline_without_a_score():
    api = ScoredLater(polls=10**9)
    study = with_test_score(api, {"id": 1, "state": "done", "test_score": None}, 0.01, wait_s=0.05)
    assert study["test_score"] is None
