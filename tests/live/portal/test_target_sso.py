"""The target role's MSC1731 rewrite of the SSO redirect, through a real IdP.

A client signs in at the target ``eng`` directly (no portal), with Synapse's
own OpenID Connect login and the test provider: Synapse finally sends the
browser to ``redirectUrl?...&homeserver=<eng>&loginToken=...``, and the token
login's response carries ``well_known``.
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit

import pytest

from deploy.homeserver import HttpResponse, http
from tests.support.portal_deployment import IDP_ID, SAML_IDP_ID, PortalDeployment
from tests.support.portal_sso import login_hint
from tests.support.spec import validate_login_response
from tests.support.sso_client import SsoClient, auto_post_form

pytestmark = pytest.mark.live


def _sign_in(portals: PortalDeployment, path: str, redirect_url: str) -> str:
    """Follow the target's SSO to Synapse's confirmation page; its link."""
    client = SsoClient()
    start = portals.eng.url(f"{path}?{urlencode({'redirectUrl': redirect_url})}")
    hint = login_hint(portals, "erin")

    def rewrite(url: str) -> str:
        if "/_synapse/client/pick_idp?" in url and "idp=" not in url:
            return f"{url}&idp={IDP_ID}"  # Synapse's IdP picker: choose OIDC
        return hint(url)

    callback = client.follow(
        start, until=portals.eng.url("/_synapse/client/oidc/callback"), rewrite=rewrite
    )
    page = client.request("GET", callback)
    # client.test is not in eng's sso.client_whitelist: Synapse asks first.
    assert page.status == 200, page
    link = re.search(r'href="([^"]+)" class="primary-button"', page.body.decode())
    assert link is not None, page.body[:2000]
    return html.unescape(link[1])


@pytest.mark.parametrize(
    "path",
    [
        f"/_matrix/client/v3/login/sso/redirect/{IDP_ID}",
        f"/_matrix/client/r0/login/sso/redirect/{IDP_ID}",
        "/_matrix/client/v3/login/sso/redirect",
    ],
)
def test_final_redirect_carries_the_configured_homeserver(
    portals: PortalDeployment, path: str
) -> None:
    evil = quote("http://evil.test", safe="")
    final = _sign_in(portals, path, f"http://client.test/cb?homeserver={evil}&x=1")
    parts = urlsplit(final)
    assert final.startswith("http://client.test/cb?")
    query = parse_qsl(parts.query)
    assert [k for k, _ in query] == ["x", "homeserver", "loginToken"]
    assert dict(query)["homeserver"] == portals.eng.base_url
    login = http(
        "POST",
        portals.eng.url("/_matrix/client/v3/login"),
        {"type": "m.login.token", "token": dict(query)["loginToken"]},
    )
    assert login.status == 200, login
    validate_login_response(login.json())
    assert login.json()["user_id"] == "@erin:eng.test"
    assert (
        login.json()["well_known"]["m.homeserver"]["base_url"] == portals.eng.base_url
    )


def test_target_refuses_javascript_redirect_url(portals: PortalDeployment) -> None:
    path = f"/_matrix/client/v3/login/sso/redirect/{IDP_ID}"
    answer = http("GET", portals.eng.url(f"{path}?redirectUrl=javascript:alert(1)"))
    assert answer.status == 400
    assert b"javascript: URLs are never allowed" in answer.body
    assert "location" not in answer.headers


@pytest.mark.parametrize(
    ("redirect_url", "reason"),
    [
        ("http://127.0.0.1:@evil.test/cb", b"must not contain a user name or password"),
        ("http://evil.test\\@127.0.0.1/cb", b"backslash"),
        ("http://client.test\t.evil.test/cb", b"control character"),
    ],
)
def test_target_refuses_hostile_redirect_url(
    portals: PortalDeployment, redirect_url: str, reason: bytes
) -> None:
    """Before Synapse's own prefix match of sso.client_whitelist sees it."""
    path = f"/_matrix/client/v3/login/sso/redirect/{IDP_ID}"
    query = urlencode({"redirectUrl": redirect_url})
    answer = http("GET", portals.eng.url(f"{path}?{query}"))
    assert answer.status == 400
    assert reason in answer.body
    assert "location" not in answer.headers


def test_target_refuses_what_synapse_whitelist_would_wrongly_match(
    portals: PortalDeployment,
) -> None:
    """eng whitelists the portal's completion URL; Synapse matches it as a
    string prefix, which also takes a longer path."""
    completion = portals.portal_proxy.url("/_synapse/client/login_redirect/complete")
    path = f"/_matrix/client/v3/login/sso/redirect/{IDP_ID}"
    query = urlencode({"redirectUrl": completion + "s/x"})
    answer = http("GET", portals.eng.url(f"{path}?{query}"))
    assert answer.status == 400
    assert b"starts like a client address this server trusts" in answer.body
    assert "location" not in answer.headers


def test_target_lists_sso_and_token_login(portals: PortalDeployment) -> None:
    flows = http("GET", portals.eng.url("/_matrix/client/v3/login")).json()["flows"]
    types = [f["type"] for f in flows]
    assert "m.login.token" in types
    sso = next(f for f in flows if f["type"] == "m.login.sso")
    assert [p["id"] for p in sso["identity_providers"]] == [IDP_ID, SAML_IDP_ID]


def _saml_answer_with_relay_state(
    portals: PortalDeployment, hs_name: str, path: str, relay_state: str
) -> HttpResponse:
    """Sign in with SAML, the browser changing ``RelayState`` on its way to
    the IdP (it comes back unchanged: the IdP signs only its own answer)."""
    hs = getattr(portals, hs_name)
    client = SsoClient()
    idp = client.follow(hs.url(path), until=portals.saml_idp.base_url)
    parts = urlsplit(idp)
    query = [
        (k, relay_state if k == "RelayState" else v) for k, v in parse_qsl(parts.query)
    ]
    assert "RelayState" in dict(query), idp
    query.append(("login_hint", "erin"))
    page = client.request("GET", parts._replace(query=urlencode(query)).geturl())
    form = auto_post_form(page)
    assert form is not None, page
    return client.request("POST", urljoin(idp, form[0]), form=form[1])


@pytest.mark.parametrize(
    "relay_state",
    ["javascript:alert(document.cookie)//", "http://127.0.0.1:@evil.test/cb"],
)
def test_saml_relay_state_changed_on_the_way_is_refused(
    portals: PortalDeployment, relay_state: str
) -> None:
    start = f"/_matrix/client/v3/login/sso/redirect/{SAML_IDP_ID}?" + urlencode(
        {"redirectUrl": "http://client.test/cb"}
    )
    answer = _saml_answer_with_relay_state(portals, "eng", start, relay_state)
    assert answer.status == 400, answer
    assert answer.headers["content-type"].startswith("text/html")
    assert "location" not in answer.headers
    assert b"loginToken" not in answer.body


def test_portal_own_saml_sign_in_completes_only_towards_the_bounce(
    portals: PortalDeployment,
) -> None:
    """A RelayState changed to a client URL gets no token of the portal's."""
    bounce = portals.portal_proxy.url("/_synapse/client/login_redirect/bounce?s=x")
    start = f"/_matrix/client/v3/login/sso/redirect/{SAML_IDP_ID}?" + urlencode(
        {"redirectUrl": bounce}
    )
    answer = _saml_answer_with_relay_state(
        portals, "portal_proxy", start, "http://client.test/cb"
    )
    assert answer.status == 400, answer
    assert "location" not in answer.headers
    assert b"did not start on this portal" in answer.body
