"""`repeats: {auto: true, max_seeds: N}` as a user runs it: `studyd submit --watch` against a real
`studyd serve` on SQLite whose embedded worker trains every trial (digits, 2 epochs), then
`studyd summary`. The rounds end when decided or at the cap, and the summary says which."""

from __future__ import annotations

import re
from collections import defaultdict

import optuna
import pytest
from cli_harness import parsed, start_server, studyd

pytestmark = [pytest.mark.process, pytest.mark.slow]

MAX_SEEDS = 5
SPEC = f"""\
name: auto-seeds
dataset: {{name: digits}}
model: {{depth: 1, width: 32}}
dropout: {{variants: [none, standard], rate: 0.3}}
training: {{epochs: 2, batch_size: 64, lr: 0.003}}
search: {{n_trials: 2, sampler: grid, pruner: {{name: none}}}}
top_k: 1
repeats: {{auto: true, max_seeds: {MAX_SEEDS}, margin: 0.005}}
"""


def _replicate_seeds(database_url: str, optuna_name: str) -> dict[str, list[int]]:
    study = optuna.load_study(study_name=optuna_name, storage=database_url)
    seeds: dict[str, list[int]] = defaultdict(list)
    for t in study.get_trials(deepcopy=False):
        if "replicate_of" in t.user_attrs:
            assert t.state == optuna.trial.TrialState.COMPLETE, t.user_attrs
            seeds[t.user_attrs["variant"]].append(t.user_attrs["replicate_seed"])
    return {variant: sorted(s) for variant, s in seeds.items()}


def test_auto_repeats_add_seeds_until_decided_or_the_cap_and_the_summary_says_which(tmp_path):
    server = start_server(tmp_path, workers=1)
    try:
        spec_file = tmp_path / "auto.yaml"
        spec_file.write_text(SPEC)
        watched = studyd("submit", str(spec_file), "--watch", "--json", url=server.url, timeout=400)
        done = parsed(watched)
        assert done["state"] == "done" and done["test_score"] is not None
        seeds = _replicate_seeds(server.database_url, done["optuna_name"])
        # Both variants' chosen configs on the same seeds: 3 first, then one per round.
        assert seeds.keys() == {"none", "standard"} and seeds["none"] == seeds["standard"]
        n = len(seeds["none"])
        assert 3 <= n <= MAX_SEEDS and seeds["none"] == list(range(1, n + 1))
        assert done["finished"] == 2 + 2 * n  # the search, then every replicate, counted once
        summary = parsed(studyd("summary", str(done["id"]), "--json", url=server.url))
        undecided = re.search(r"Undecided — .* \((\d+) seeds, ", summary["verdict"] or "")
        # Stopped early only when decided; at the cap, the summary says what is still open.
        if n < MAX_SEEDS:
            assert undecided is None, summary["verdict"]
        else:
            assert undecided is None or int(undecided.group(1)) == MAX_SEEDS
        shown = studyd("summary", str(done["id"]), url=server.url)
        assert shown.returncode == 0, shown.stderr
        if undecided:
            assert "more seeds" in " ".join(shown.stdout.split())
    finally:
        server.stop()
