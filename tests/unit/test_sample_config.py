"""Each block of sample_homeserver.yaml is a valid module configuration."""

from __future__ import annotations

from pathlib import Path

import yaml

from synapse_login_redirect import LoginRedirect

SAMPLE = Path(__file__).resolve().parents[2] / "sample_homeserver.yaml"


def test_sample_blocks_parse() -> None:
    documents = list(yaml.safe_load_all(SAMPLE.read_text()))
    assert len(documents) == 2
    configs = [LoginRedirect.parse_config(d["modules"][0]["config"]) for d in documents]
    target, portal = configs
    assert target.portal is None
    assert target.base_url == "https://matrix.eng.example"
    assert portal.portal is not None
    assert portal.targets["hist"].mode == "proxy"
    assert portal.targets["hist"].proxy_url == "http://10.0.0.12:8009"
    assert portal.targets["eng"].proxy_url == portal.targets["eng"].base_url
    assert portal.portal.engine.pool.weights == {"eng": 2, "hist": 1}
