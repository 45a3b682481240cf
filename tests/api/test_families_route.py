"""`GET /families`: the installed families (the example plugin included), and the 422s a spec
naming a family, field or site that does not exist gets (`studyd families`: tests/e2e)."""

from __future__ import annotations

from api_harness import Api, spec


def test_families_lists_the_built_ins_and_the_installed_plugin_with_sites(api: Api):
    response = api.client.get("/families")
    assert response.status_code == 200, response.text
    families = {f["name"]: f for f in response.json()}
    assert list(families)[:2] == ["mlp", "cnn"] and "resnet1d" in families
    cnn_sites = {s["name"]: s["variants"] for s in families["cnn"]["sites"]}
    assert "standout" not in cnn_sites["conv"] and "standout" in cnn_sites["last_hidden"]
    assert families["resnet1d"]["width"] == "channels" and not families["cnn"]["stackable"]


def test_specs_naming_a_missing_family_field_or_site_are_422_listing_what_exists(api: Api):
    cases = {
        "installed: mlp, cnn": {"family": "resnet9000"},
        "its fields are family, log, per_layer_widths, width, depth": {"family": "cnn", "wdth": 8},
    }
    for needle, model in cases.items():
        response = api.client.post("/studies", json={**spec(), "model": model})
        assert response.status_code == 422, response.text
        assert needle in response.json()["detail"]
    body = {**spec(), "model": {"family": "cnn"}}
    body["dropout"] = {"variants": ["dropconnect"], "placements": ["conv"]}
    response = api.client.post("/studies", json=body)
    assert response.status_code == 422 and "fc sites only" in response.json()["detail"]
    body["dropout"] = {"variants": ["standard"], "placements": ["conv"], "conv_form": "channel"}
    assert api.client.post("/studies", json=body).status_code == 201
