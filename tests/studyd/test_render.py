"""The CLI's views at 80 columns: progress says what the target is made of, trial tables drop
columns rather than numbers and say how to see the rest."""

from __future__ import annotations

import io

from rich.console import Console

from studyd.cli.render import progress_line, trials_table


def _shown(renderable, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue().splitlines()


def _trials(n: int) -> list[dict]:
    return [
        {
            "number": 100 + i,
            "state": "complete",
            "value": 0.9853 - i / 1e4,
            "variant": "multisample",
            "placement": "input+hidden",
            "params": {"rate": 0.5731},
            "hidden": [256, 256],
            "user_attrs": {"gap": 0.0312},
            "duration_seconds": 43.7,
            "feasible": False,
        }
        for i in range(n)
    ]


def _study(target: int, finished: int, **extra) -> dict:
    return {
        "state": "running",
        "target_trials": target,
        "finished": finished,
        "trial_counts": {"running": 1},
        "spec": {"search": {"n_trials": 20}},
        **extra,
    }


def test_a_target_grown_by_replicates_says_searched_plus_replicates():
    line = progress_line(_study(32, 20))
    assert line.startswith("20/32 finished (20 searched + 12 seed replicates) · 1 running")


def test_one_replicate_is_singular_and_a_plain_search_says_nothing_more():
    assert "(20 searched + 1 seed replicate)" in progress_line(_study(21, 20))
    assert progress_line(_study(20, 5)).startswith("5/20 finished · 1 running")


def test_a_search_that_ended_early_does_not_guess():
    line = progress_line(_study(14, 10, search_ended="the sampler keeps repeating itself"))
    assert line.startswith("10/14 finished · ")


def test_trials_at_80_columns_keep_every_number_whole_and_say_how_to_see_the_rest():
    lines = _shown(trials_table(_trials(20), total=32, width=80), 80)
    assert max(len(line) for line in lines) <= 80
    assert "…" not in "\n".join(lines)
    rows = [line.split() for line in lines if line.split() and line.split()[0].isdigit()][:-1]
    assert [r[0] for r in rows] == [str(100 + i) for i in range(20)]
    assert rows[0][1:5] == ["complete", "(infeasible)", "0.9853", "multisample"]
    assert "12 more: --limit 32 shows all" in lines
    assert any(line.startswith("not shown at this width: secs") for line in lines)


def test_a_wide_terminal_shows_every_column():
    lines = _shown(trials_table(_trials(2), total=2, width=160), 160)
    header = next(line for line in lines if line.lstrip().startswith("#"))
    assert header.split() == ["#", "state", "value", "variant", "placement", "rate", "net",
                              "gap", "secs"]  # fmt: skip
    assert not any("more:" in line or "not shown" in line for line in lines)
