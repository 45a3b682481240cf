"""`GET /families` and `studyd families`: the installed families (the example plugin
included), and the 422s a spec naming a family, field or site that does not exist gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from api_harness import Server, spec


def test_families_lists_the_built_ins_and_the_installed_plugin_with_sites(server: Server):
    response = server.client.get("/families")
    assert response.status_code == 200, response.text
    families = {f["name"]: f for f in response.json()}
    assert list(families)[:2] == ["mlp", "cnn"] and "resnet1d" in families
    cnn_sites = {s["name"]: s["variants"] for s in families["cnn"]["sites"]}
    assert "standout" not in cnn_sites["conv"] and "standout" in cnn_sites["last_hidden"]
    assert families["resnet1d"]["width"] == "channels" and not families["cnn"]["stackable"]


def test_specs_naming_a_missing_family_field_or_site_are_422_listing_what_exists(server: Server):
    cases = {
        "installed: mlp, cnn": {"family": "resnet9000"},
        "its fields are family, log, per_layer_widths, width, depth": {"family": "cnn", "wdth": 8},
    }
    for needle, model in cases.items():
        response = server.client.post("/studies", json={**spec(), "model": model})
        assert response.status_code == 422, response.text
        assert needle in response.json()["detail"]
    body = {**spec(), "model": {"family": "cnn"}}
    body["dropout"] = {"variants": ["dropconnect"], "placements": ["conv"]}
    response = server.client.post("/studies", json=body)
    assert response.status_code == 422 and "fc sites only" in response.json()["detail"]
    body["dropout"] = {"variants": ["standard"], "placements": ["conv"], "conv_form": "channel"}
    assert server.client.post("/studies", json=body).status_code == 201


def _studyd(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDYD_")}
    command = [sys.executable, "-m", "studyd.cli.main", *args, "--url", url]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_studyd_families_prints_each_family_its_sites_and_json(server: Server):
    shown = _studyd("families", url=server.url)
    assert shown.returncode == 0, shown.stderr
    assert "cnn — conv blocks" in shown.stdout
    assert "site conv [map]: none, standard, vanilla, gaussian, rdrop, multisample" in shown.stdout
    assert "channels (width)" in shown.stdout  # the plugin's own width field
    as_json = _studyd("families", "--json", url=server.url)
    assert [f["name"] for f in json.loads(as_json.stdout)][:2] == ["mlp", "cnn"]
