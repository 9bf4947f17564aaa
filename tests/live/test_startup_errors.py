"""Misconfiguration stops Synapse at start-up with an error naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy.homeserver import Homeserver, start_all

pytestmark = pytest.mark.live


@pytest.mark.parametrize(
    ("name", "module_config", "expected"),
    [
        (
            "bad-url",
            {"targets": {"eng": {"base_url": "matrix.eng.example"}}},
            ["targets.eng.base_url", "must start with https:// or http://"],
        ),
        (
            "bad-portal-idp",
            {
                "targets": {"eng": {"base_url": "http://127.0.0.1:9"}},
                "portal": {"sso": {"portal_idps": {"oidc-corp": "oidc-corp"}}},
            },
            [
                "portal.sso.portal_idps",
                "/_synapse/client/login_redirect/bounce in Synapse's "
                "sso.client_whitelist",
                "Error during startup",
            ],
        ),
    ],
)
def test_synapse_refuses_to_start(
    workdir: Path, name: str, module_config: dict[str, Any], expected: list[str]
) -> None:
    hs = Homeserver(name, workdir, module_config=module_config)
    with pytest.raises(RuntimeError) as failure:
        start_all([hs])
    message = str(failure.value)
    for text in expected:
        assert text in message, message
