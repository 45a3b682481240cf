"""Trial slots under real concurrency: 8 OS processes racing on one database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from storage import queue

PROCS = Path(__file__).with_name("procs.py")
TARGETS = [7, 13, 25, 40, 15]  # N = 100 slots over five studies


@pytest.mark.slow
@pytest.mark.process
def test_slot_claims_never_exceed_target_under_8_processes(db_url, engine, tmp_path):
    studies = [
        queue.submit_study(engine, name=f"race{i}", spec={}, target_trials=t, priority=i % 2)
        for i, t in enumerate(TARGETS)
    ]
    start = tmp_path / "start"
    children = [
        subprocess.Popen(
            [sys.executable, str(PROCS), "claim", db_url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("start.ready.*"))) < len(children):
        assert time.monotonic() < deadline, "children did not start"
        time.sleep(0.02)
    began = time.perf_counter()
    start.touch()
    outputs = [child.communicate(timeout=120) for child in children]
    seconds = time.perf_counter() - began

    for child, (_, err) in zip(children, outputs, strict=True):
        assert "database is locked" not in err
        assert child.returncode == 0, err
    claims = [json.loads(line) for out, _ in outputs for line in out.splitlines()]
    pairs = Counter((c["study"], c["slot"]) for c in claims)
    assert len(claims) == sum(TARGETS)
    assert max(pairs.values()) == 1, "a slot was handed out twice"
    for study, target in zip(studies, TARGETS, strict=True):
        assert sorted(c["slot"] for c in claims if c["study"] == study.id) == list(
            range(1, target + 1)
        )
        final = queue.get_study(engine, study.id)
        assert (final.claimed, final.finished, final.state) == (target, target, "done")
    print(f"{len(claims)} claims by 8 processes in {seconds:.2f} s: {len(claims) / seconds:.0f}/s")
