"""matrix-js-sdk logs in at the portal the way Element Web does.

``tests/live/js/element_login.mjs`` posts the login with matrix-js-sdk, checks
the response's ``well_known`` with ``AutoDiscovery.fromDiscoveryConfig`` (as
Element Web's login does) and calls whoami on the homeserver it names.
``python3 dev.py test`` installs the npm project there with ``npm ci``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.support.deployment import PASSWORD
from tests.support.portal_deployment import PortalDeployment
from tests.support.portal_sso import to_completion
from tests.support.sso_client import SsoClient

pytestmark = pytest.mark.live

JS = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS / "element_login.mjs"


def element_login(server: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run the script: its JSON answer (the last line; js-sdk logs before it)."""
    if not (JS / "node_modules" / "matrix-js-sdk").is_dir():
        pytest.fail(f"matrix-js-sdk is not installed: run `npm ci --prefix {JS}`")
    done = subprocess.run(
        ["node", str(SCRIPT), server, json.dumps(request)],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return answer


def password(user: str) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": PASSWORD,
    }


def test_follows_the_307_then_the_well_known(portals: PortalDeployment) -> None:
    redirected = b' 307 "POST /_matrix/client/v3/login HTTP/1.1"'
    before = portals.portal.log_path.read_bytes().count(redirected)
    answer = element_login(portals.portal.base_url, password("@erin:eng.test"))
    assert portals.portal.log_path.read_bytes().count(redirected) == before + 1
    assert answer == {
        "user_id": "@erin:eng.test",
        "discovery": "SUCCESS",
        "homeserver": portals.eng.base_url,
        "whoami": "@erin:eng.test",
    }


def test_logs_in_through_the_proxy(portals: PortalDeployment) -> None:
    answer = element_login(portals.portal_proxy.base_url, password("hist_hana"))
    assert answer == {
        "user_id": "@hist_hana:hist.test",
        "discovery": "SUCCESS",
        "homeserver": portals.hist.base_url,
        "whoami": "@hist_hana:hist.test",
    }


def test_finishes_sso_with_the_token_at_the_portal(portals: PortalDeployment) -> None:
    client = SsoClient()
    completion = to_completion(portals, client, {"department": "History"}, "hugo")
    location = client.request("GET", completion).headers["location"]
    token = dict(parse_qsl(urlsplit(location).query))["loginToken"]
    answer = element_login(
        portals.portal_proxy.base_url, {"type": "m.login.token", "token": token}
    )
    assert answer == {
        "user_id": "@hugo:hist.test",
        "discovery": "SUCCESS",
        "homeserver": portals.hist.base_url,
        "whoami": "@hugo:hist.test",
    }


def test_sees_the_refusal_of_a_token_nobody_minted(portals: PortalDeployment) -> None:
    answer = element_login(
        portals.portal_proxy.base_url,
        {"type": "m.login.token", "token": "syl_forged_token_0000"},
    )
    error = answer["error"]
    assert (error["httpStatus"], error["errcode"]) == (403, "M_FORBIDDEN")
    assert "token" in error["message"]
