"""Every path of Synapse's SSO and CAS redirect servlet is the module's, on
portals (with and without an IdP of their own) and on targets.

The paths come from Synapse's own route patterns at run time, so a path a
new Synapse adds is covered without changing this test.
"""

from __future__ import annotations

import itertools
import re
from urllib.parse import urlencode

import pytest
from synapse.rest.client.login import SsoRedirectServlet

from deploy.homeserver import Homeserver, http
from tests.support.portal_deployment import (
    IDP_ID,
    PORTAL_FEDERATION_PORT,
    PortalDeployment,
)
from tests.support.portal_sso import REALM

pytestmark = pytest.mark.live

CLIENT = "http://client.test/cb"
HOSTILE = "javascript:alert(document.cookie)"
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_ALTERNATIVES = re.compile(r"\(([^()?]+)\)")


def servlet_paths() -> list[str]:
    """Every concrete path of SsoRedirectServlet's patterns (idp ids filled in)."""
    paths = []
    for pattern in SsoRedirectServlet.PATTERNS:
        text = _NAMED_GROUP.sub(IDP_ID, pattern.pattern.strip("^$"))
        pieces = _ALTERNATIVES.split(text)
        choices = [
            piece.split("|") if i % 2 else [piece] for i, piece in enumerate(pieces)
        ]
        for combination in itertools.product(*choices):
            path = "".join(combination)
            assert pattern.fullmatch(path), (pattern.pattern, path)
            paths.append(path)
    return paths


PATHS = servlet_paths()


def test_the_paths_cover_every_version_and_both_servlet_names() -> None:
    assert len(PATHS) >= 10
    for piece in ("/api/v1/", "/r0/", "/v3/", "/cas/redirect", f"/redirect/{IDP_ID}"):
        assert any(piece in path for path in PATHS), piece


def _start(hs: Homeserver, path: str, redirect_url: str) -> str:
    return hs.url(f"{path}?{urlencode({'redirectUrl': redirect_url})}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("server", ["portal", "portal_proxy", "eng"])
def test_hostile_redirect_url_is_refused_on_every_path(
    portals: PortalDeployment, server: str, path: str
) -> None:
    hs = getattr(portals, server)
    answer = http("GET", _start(hs, path, HOSTILE))
    assert answer.status == 400, answer
    assert answer.headers["content-type"].startswith("text/html")
    assert "location" not in answer.headers
    assert b"javascript: URLs are never allowed" in answer.body


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("server", ["portal", "portal_proxy"])
def test_portal_sends_every_path_to_the_realm_page(
    portals: PortalDeployment, server: str, path: str
) -> None:
    """No path reaches the portal's own SSO (a token for a shadow account)."""
    answer = http("GET", _start(getattr(portals, server), path, CLIENT))
    assert answer.status == 302, answer
    assert answer.headers["location"].startswith(f"{REALM}?")


def test_module_pages_only_on_listeners_that_serve_the_client_api(
    portals: PortalDeployment,
) -> None:
    page = f"{REALM}?{urlencode({'redirectUrl': CLIENT})}"
    assert http("GET", portals.portal.url(page)).status == 200
    federation = f"http://127.0.0.1:{PORTAL_FEDERATION_PORT}"
    assert http("GET", federation + "/_matrix/federation/v1/version").status == 200
    for path in (page, "/_synapse/client/login_redirect/complete?session=x"):
        answer = http("GET", federation + path)
        assert answer.status == 404, answer
        assert answer.json()["errcode"] == "M_UNRECOGNIZED"
