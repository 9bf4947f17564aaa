"""Single sign-on through the portal, driven by an HTTP client that follows
redirects and submits forms (MSC1730's SSO flow, MSC1731, the SSO spec's TODOs).

portal-proxy → home-realm page → the target's /login/sso/redirect → the OpenID
Connect provider → the target's callback → the portal's completion URL → the
client's redirectUrl with homeserver and loginToken → m.login.token at the
portal, proxied to the target that minted the token.
"""

from __future__ import annotations

import html
import re
import time
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

import ada_url
import pytest

from deploy.homeserver import HttpResponse, http, postgres
from synapse_login_redirect.portal.health import MAX_READ_AGE_MS
from tests.support.logs import wait_for_log
from tests.support.portal_deployment import (
    IDP_ID,
    OTHER_IDP_ID,
    PORTAL_IDP_ID,
    SAML_IDP_ID,
    PortalDeployment,
)
from tests.support.portal_sso import (
    BOUNCE,
    CLIENT,
    COMPLETE,
    REALM,
    any_login_hint,
    login_hint,
    sso_start,
    to_completion,
)
from tests.support.spec import validate_login_flows, validate_login_response
from tests.support.sso_client import SsoClient

pytestmark = pytest.mark.live


def token_login(portals: PortalDeployment, token: str) -> HttpResponse:
    return http(
        "POST",
        portals.portal_proxy.url("/_matrix/client/v3/login"),
        {"type": "m.login.token", "token": token},
    )


def login_posts(portals: PortalDeployment, name: str) -> int:
    hs = portals.targets[name]
    return hs.log_path.read_bytes().count(b'"POST /_matrix/client/v3/login HTTP/1.1"')


@pytest.mark.parametrize(
    ("choice", "user", "target"),
    [
        ({"department": "Engineering"}, "erin", "eng"),
        ({"user": "hugo@hist.example"}, "hugo", "hist"),
        ({"user": "@erin:eng.test"}, "erin", "eng"),
    ],
)
def test_sso_through_the_portal_ends_on_the_users_homeserver(
    portals: PortalDeployment, choice: dict[str, str], user: str, target: str
) -> None:
    hs = portals.targets[target]
    client = SsoClient()
    completion = to_completion(portals, client, choice, user)
    final = client.request("GET", completion)
    assert final.status == 302, final
    location = final.headers["location"]
    assert location.startswith("http://client.test/cb?")
    query = parse_qsl(urlsplit(location).query)
    assert [k for k, _ in query] == ["x", "homeserver", "loginToken"]
    assert dict(query)["homeserver"] == hs.base_url
    other = "hist" if target == "eng" else "eng"
    other_posts = login_posts(portals, other)
    login = token_login(portals, dict(query)["loginToken"])
    assert login.status == 200, login
    body = login.json()
    validate_login_response(body)
    assert body["user_id"] == f"@{user}:{hs.server_name}"
    assert body["well_known"]["m.homeserver"]["base_url"] == hs.base_url
    assert body["base_cs_url"] == hs.base_url
    whoami = http(
        "GET",
        hs.url("/_matrix/client/v3/account/whoami"),
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert whoami.json()["user_id"] == body["user_id"]
    assert login_posts(portals, other) == other_posts  # the token went nowhere else


def test_get_login_lists_the_realm_page_among_the_providers(
    portals: PortalDeployment,
) -> None:
    """For clients that show a button per IdP (Element): the portal's own IdPs
    and the home-realm page."""
    body = http("GET", portals.portal_proxy.url("/_matrix/client/v3/login")).json()
    validate_login_flows(body)
    sso = next(f for f in body["flows"] if f["type"] == "m.login.sso")
    assert [p["id"] for p in sso["identity_providers"]] == [
        PORTAL_IDP_ID,
        OTHER_IDP_ID,
        SAML_IDP_ID,
        "login-redirect-realm",
    ]
    assert sso["identity_providers"][-1]["name"] == "Choose your organisation"
    path = "/_matrix/client/v3/login/sso/redirect/login-redirect-realm"
    start = http(
        "GET", portals.portal_proxy.url(f"{path}?{urlencode({'redirectUrl': CLIENT})}")
    )
    assert start.status == 302, start
    assert start.headers["location"] == f"{REALM}?{urlencode({'redirectUrl': CLIENT})}"


def test_realm_page_lists_departments_and_asks_for_the_user(
    portals: PortalDeployment,
) -> None:
    client = SsoClient()
    start = client.request("GET", sso_start(portals, CLIENT))
    assert start.status == 302
    assert start.headers["location"].startswith(REALM + "?")
    page = client.request("GET", portals.portal_proxy.url(start.headers["location"]))
    text = page.body.decode()
    assert page.headers["content-type"].startswith("text/html")
    for department in ("Engineering", "History", "Lab"):
        assert f'<option value="{department}">' in text
    assert 'id="user"' in text
    assert f'value="{html.escape(CLIENT)}"' in text


def test_unlisted_client_gets_the_confirmation_page(portals: PortalDeployment) -> None:
    client = SsoClient()
    unlisted = "http://localhost:9/cb"
    completion = to_completion(
        portals, client, {"department": "Engineering"}, "erin", unlisted
    )
    page = client.request("GET", completion)
    assert page.status == 200, page
    text = page.body.decode()
    assert "Continue to your account" in text
    assert "http://localhost:9/cb" in text
    link = html.unescape(re.search(r'href="([^"]+)" class="primary-button"', text)[1])  # type: ignore[index]
    assert link.startswith(unlisted + "?")
    query = parse_qs(urlsplit(link).query)
    assert query["homeserver"] == [portals.eng.base_url]
    assert token_login(portals, query["loginToken"][0]).status == 200


def test_smuggled_homeserver_is_replaced(portals: PortalDeployment) -> None:
    client = SsoClient()
    smuggled = "http://client.test/cb?homeserver=" + quote("http://evil.test", safe="")
    completion = to_completion(
        portals, client, {"department": "History"}, "hugo", smuggled
    )
    location = client.request("GET", completion).headers["location"]
    assert parse_qs(urlsplit(location).query)["homeserver"] == [portals.hist.base_url]


def test_homeserver_smuggled_in_the_fragment_is_removed(
    portals: PortalDeployment,
) -> None:
    """The rest of the fragment (a client's own route) is kept."""
    evil = quote("http://evil.test", safe="")
    smuggled = f"http://client.test/cb#/login?homeserver={evil}&x=1"
    client = SsoClient()
    completion = to_completion(
        portals, client, {"department": "History"}, "hugo", smuggled
    )
    location = client.request("GET", completion).headers["location"]
    parts = urlsplit(location)
    assert parse_qs(parts.query)["homeserver"] == [portals.hist.base_url]
    assert parts.fragment == "/login?x=1"


# The portal's redirectUrl prefixes include "http://127.0.0.1:", the string a
# Synapse operator writes to allow any port on loopback.
HOSTILE_CLIENTS = [
    "http://127.0.0.1:@evil.test/cb",
    "http://127.0.0.1:80@evil.test/cb",
    "http://127.0.0.1:\t@evil.test/cb",
    "http://localhost:@evil.test/cb",
    "http://127.0.0.1:%40evil.test/cb",
    "http://client.test\\@evil.test/cb",
    "http:\\\\127.0.0.1:@evil.test/cb",
]
CLIENT_HOSTS = ("client.test", "127.0.0.1", "localhost")


def _token_destination(portals: PortalDeployment, redirect_url: str) -> str:
    """Where a sign-in started with ``redirect_url`` sends the login token: the
    origin of a redirect, "confirmation page", or "refused" (an error page)."""
    client = SsoClient()
    start = client.request("GET", sso_start(portals, redirect_url))
    if start.status == 400:
        assert b"This app cannot sign in here" in start.body
        assert "location" not in start.headers
        return "refused"
    completion = to_completion(
        portals, client, {"department": "Engineering"}, "erin", redirect_url
    )
    final = client.request("GET", completion)
    if final.status == 200:
        assert b"Continue to your account" in final.body
        return "confirmation page"
    assert final.status == 302, final
    return ada_url.URL(final.headers["location"]).origin


@pytest.mark.parametrize("redirect_url", HOSTILE_CLIENTS)
def test_hostile_redirect_url_never_gets_the_token(
    portals: PortalDeployment, redirect_url: str
) -> None:
    destination = _token_destination(portals, redirect_url)
    if destination.startswith("http"):
        assert ada_url.URL(destination).hostname in CLIENT_HOSTS, destination
    assert destination == "refused"


def test_hostile_redirect_url_posted_to_the_realm_page_is_refused(
    portals: PortalDeployment,
) -> None:
    """An attacker may skip /login/sso/redirect and post the form directly."""
    form = {"redirectUrl": HOSTILE_CLIENTS[0], "department": "Engineering"}
    answer = SsoClient().request("POST", portals.portal_proxy.url(REALM), form=form)
    assert answer.status == 400
    assert b"must not contain a user name or password" in answer.body
    assert "location" not in answer.headers


@pytest.mark.parametrize(
    ("redirect_url", "destination"),
    [
        ("http://client.test/@evil.test", "http://client.test"),
        ("http://127.0.0.1:1/cb", "http://127.0.0.1:1"),
        ("HTTP://CLIENT.test:80/cb", "http://client.test"),
        ("http://localhost:9/cb", "confirmation page"),
    ],
)
def test_redirect_url_goes_to_its_browser_parsed_origin(
    portals: PortalDeployment, redirect_url: str, destination: str
) -> None:
    assert _token_destination(portals, redirect_url) == destination


def test_whitelist_entry_without_an_origin_is_reported(
    portals: PortalDeployment,
) -> None:
    wait_for_log(
        portals.portal_proxy,
        b"sso.client_whitelist entry 'element://' never skips the confirmation page",
    )


def test_completion_used_from_another_browser_is_refused(
    portals: PortalDeployment,
) -> None:
    client = SsoClient()
    completion = to_completion(portals, client, {"department": "Engineering"}, "erin")
    thief = SsoClient().request("GET", completion)
    assert thief.status == 403
    assert b"started in another browser" in thief.body
    assert "location" not in thief.headers
    assert client.request("GET", completion).status == 302  # not used up by the thief


def test_replayed_completion_is_refused(portals: PortalDeployment) -> None:
    client = SsoClient()
    completion = to_completion(portals, client, {"department": "Engineering"}, "erin")
    session_cookies = dict(client.cookies)
    assert client.request("GET", completion).status == 302
    client.cookies = session_cookies  # even with the cookie back
    replay = client.request("GET", completion)
    assert replay.status == 403
    assert b"already used" in replay.body


def test_forged_session_is_refused(portals: PortalDeployment) -> None:
    forged = portals.portal_proxy.url(f"{COMPLETE}?session=forged&loginToken=abc")
    answer = SsoClient().request("GET", forged)
    assert answer.status == 403
    assert b"not valid here" in answer.body
    assert "location" not in answer.headers


def test_expired_session_is_refused(portals: PortalDeployment) -> None:
    client = SsoClient()
    completion = to_completion(portals, client, {"department": "Engineering"}, "erin")
    session = parse_qs(urlsplit(completion).query)["session"][0]
    connection = postgres(portals.postgres_db)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE login_redirect_sso_sessions SET expires_ts = 0 WHERE session_id = %s",
            (session,),
        )
    connection.close()
    answer = client.request("GET", completion)
    assert answer.status == 403
    assert b"took too long" in answer.body


@pytest.mark.parametrize(
    ("redirect_url", "reason"),
    [
        ("javascript:alert(document.cookie)", b"javascript: URLs are never allowed"),
        ("https://evil.example/cb", b"not one of the client addresses"),
        ("data:text/html,hi", b"data: URLs are never allowed"),
    ],
)
def test_refused_redirect_url_gets_an_error_page(
    portals: PortalDeployment, redirect_url: str, reason: bytes
) -> None:
    answer = SsoClient().request("GET", sso_start(portals, redirect_url))
    assert answer.status == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert "location" not in answer.headers
    assert reason in answer.body


@pytest.mark.parametrize("server", ["portal_proxy", "eng"])
def test_missing_redirect_url_keeps_synapse_own_error(
    portals: PortalDeployment, server: str
) -> None:
    """At the portal (which serves the endpoint itself) and at a target."""
    path = f"/_matrix/client/v3/login/sso/redirect/{IDP_ID}"
    answer = http("GET", getattr(portals, server).url(path))
    assert answer.status == 400
    assert answer.json()["errcode"] == "M_MISSING_PARAM"


@pytest.mark.parametrize(
    ("choice", "status", "message"),
    [
        ({"user": "@pat:portal-proxy.test"}, 403, b"cannot tell which homeserver"),
        ({"department": "Nowhere"}, 403, b"choose a department from the list"),
        ({}, 403, b"tell us your department"),
        ({"department": "Lab"}, 503, b"is not answering right now"),
    ],
)
def test_realm_answers_that_cannot_be_placed(
    portals: PortalDeployment, choice: dict[str, str], status: int, message: bytes
) -> None:
    wait_for_log(portals.portal_proxy, b"Target down is failing")
    if status == 503:
        # Each process reads the shared health results at most this often: a
        # read from just before the failing check may still be in use.
        time.sleep(MAX_READ_AGE_MS / 1000)
    form = {"redirectUrl": CLIENT, "idp": IDP_ID, **choice}
    answer = SsoClient().request("POST", portals.portal_proxy.url(REALM), form=form)
    assert answer.status == status, answer
    assert message in answer.body
    assert "location" not in answer.headers


def test_unknown_login_token_is_not_forwarded(portals: PortalDeployment) -> None:
    before = {name: login_posts(portals, name) for name in portals.targets}
    answer = token_login(portals, "syl_never_minted_anywhere")
    assert answer.status == 403
    assert answer.json()["errcode"] == "M_FORBIDDEN"
    assert {name: login_posts(portals, name) for name in portals.targets} == before


def test_login_token_is_not_in_the_portal_log(portals: PortalDeployment) -> None:
    client = SsoClient()
    completion = to_completion(portals, client, {"department": "Engineering"}, "erin")
    token = parse_qs(urlsplit(completion).query)["loginToken"][0]
    client.request("GET", completion)
    assert token.encode() not in portals.portal_proxy.log_path.read_bytes()


def _via_portal_idp(
    portals: PortalDeployment, client: SsoClient, user: str, idp: str = PORTAL_IDP_ID
) -> HttpResponse:
    """Sign in at the portal's own IdP first; the answer of the bounce URL."""
    path = f"/_matrix/client/v3/login/sso/redirect/{idp}"
    start = portals.portal_proxy.url(f"{path}?{urlencode({'redirectUrl': CLIENT})}")
    bounce = client.follow(
        start, until=portals.portal_proxy.url(BOUNCE), rewrite=any_login_hint(user)
    )
    return client.request("GET", bounce)


@pytest.mark.parametrize(
    ("portal_idp", "target_idp", "user", "target", "rule"),
    [
        (PORTAL_IDP_ID, IDP_ID, "ivy", "hist", "OIDC claim department"),
        (PORTAL_IDP_ID, IDP_ID, "erin", "eng", "email domain of the claim"),
        (SAML_IDP_ID, SAML_IDP_ID, "ivy", "hist", "SAML attribute department"),
        (SAML_IDP_ID, SAML_IDP_ID, "erin", "eng", "email domain of the attribute"),
    ],
)
def test_portal_idp_login_is_routed_by_the_claims(
    portals: PortalDeployment,
    portal_idp: str,
    target_idp: str,
    user: str,
    target: str,
    rule: str,
) -> None:
    hs = portals.targets[target]
    idp_logins = portals.idp.logins if target_idp == IDP_ID else portals.saml_idp.logins
    client = SsoClient()
    bounce = _via_portal_idp(portals, client, user, portal_idp)
    assert bounce.status == 302, bounce
    assert bounce.headers["location"].startswith(
        hs.url(f"/_matrix/client/v3/login/sso/redirect/{target_idp}?")
    )
    logins = len(idp_logins)
    completion = client.follow(
        bounce.headers["location"], until=portals.portal_proxy.url(COMPLETE)
    )
    # The target's sign-in with the same IdP was silent (the IdP's session).
    assert idp_logins[logins:] == [user]
    final = client.request("GET", completion)
    query = dict(parse_qsl(urlsplit(final.headers["location"]).query))
    assert query["homeserver"] == hs.base_url
    login = token_login(portals, query["loginToken"])
    assert login.status == 200, login
    assert login.json()["user_id"] == f"@{user}:{hs.server_name}"
    assert login.json()["well_known"]["m.homeserver"]["base_url"] == hs.base_url


@pytest.mark.parametrize("idp", [PORTAL_IDP_ID, SAML_IDP_ID])
def test_portal_idp_answer_the_rules_cannot_place(
    portals: PortalDeployment, idp: str
) -> None:
    answer = _via_portal_idp(portals, SsoClient(), "zed", idp)
    assert answer.status == 403
    assert b"cannot tell which homeserver" in answer.body
    assert "location" not in answer.headers


def test_bounce_from_another_browser_is_refused(portals: PortalDeployment) -> None:
    client = SsoClient()
    path = f"/_matrix/client/v3/login/sso/redirect/{PORTAL_IDP_ID}"
    start = portals.portal_proxy.url(f"{path}?{urlencode({'redirectUrl': CLIENT})}")
    bounce = client.follow(
        start,
        until=portals.portal_proxy.url(BOUNCE),
        rewrite=login_hint(portals, "ivy"),
    )
    thief = SsoClient().request("GET", bounce)
    assert thief.status == 403
    assert b"started in another browser" in thief.body


def test_saml_sign_in_through_the_portal(portals: PortalDeployment) -> None:
    """The same flow with the targets' SAML IdP (pysaml2, HTTP-POST binding)."""
    client = SsoClient()
    path = "/_matrix/client/v3/login/sso/redirect"
    start = portals.portal_proxy.url(f"{path}?{urlencode({'redirectUrl': CLIENT})}")
    realm = client.request("GET", start)
    assert realm.status == 302, realm
    form = {"redirectUrl": CLIENT, "idp": SAML_IDP_ID, "department": "Engineering"}
    bounce = client.request("POST", portals.portal_proxy.url(REALM), form=form)
    assert bounce.headers["location"].startswith(
        portals.eng.url(f"/_matrix/client/v3/login/sso/redirect/{SAML_IDP_ID}?")
    )
    logins = len(portals.saml_idp.logins)
    completion = client.follow(
        bounce.headers["location"],
        until=portals.portal_proxy.url(COMPLETE),
        rewrite=lambda u: f"{u}&login_hint=erin" if "/sso?" in u else u,
    )
    assert portals.saml_idp.logins[logins:] == ["erin"]
    final = client.request("GET", completion)
    query = dict(parse_qsl(urlsplit(final.headers["location"]).query))
    assert query["homeserver"] == portals.eng.base_url
    login = token_login(portals, query["loginToken"])
    assert login.status == 200, login
    assert login.json()["user_id"] == "@erin:eng.test"
    assert (
        login.json()["well_known"]["m.homeserver"]["base_url"] == portals.eng.base_url
    )
