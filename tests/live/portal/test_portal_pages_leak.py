"""Pages that carry a login token leak nothing (issue 11, item 8).

Every answer of the module's pages and SSO endpoints at portal-proxy (HTML
pages, redirects, errors), and a target's refusal page, sends ``Referrer-Policy: no-referrer`` and
``Cache-Control: no-store``, loads nothing from another origin, and no
``loginToken`` value of the module's paths reaches Synapse's access log.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from deploy.homeserver import HttpResponse, http
from tests.support.logs import wait_for_log
from tests.support.portal_deployment import IDP_ID, PORTAL_IDP_ID, PortalDeployment
from tests.support.portal_sso import (
    BOUNCE,
    CLIENT,
    COMPLETE,
    REALM,
    any_login_hint,
    sso_start,
    to_completion,
)
from tests.support.sso_client import SsoClient

pytestmark = pytest.mark.live

PAGES = "/_synapse/client/login_redirect/"
UNLISTED_CLIENT = "http://localhost:9/cb"
# Sent where no token belongs: it must not be logged either.
CRAFTED_TOKEN = "syl_crafted_token_in_the_query"

# A resource a page loads (not a link the user may follow): src, srcset,
# <link href>, CSS url() and @import.
# The request URI in a line of Synapse's access log.
_LOGGED_URI = re.compile(r'Processed request: .*? "[A-Z]+ (\S+) HTTP/')
_TOKEN_VALUE = re.compile(r"loginToken=([^&;]*)")
_RESOURCE = re.compile(
    r"""(?:\bsrc(?:set)?\s*=\s*["']?|<link\b[^>]*\bhref\s*=\s*["']?"""
    r"""|\burl\(\s*["']?|@import\s+["']?)([^"'\s>)]+)""",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def served(
    portals: PortalDeployment,
) -> Iterator[tuple[dict[str, HttpResponse], set[str]]]:
    """One answer of each kind the module gives, and the login tokens seen."""
    hs = portals.portal_proxy
    answers: dict[str, HttpResponse] = {}
    tokens: set[str] = set()

    answers["sso start"] = http("GET", sso_start(portals, CLIENT))
    start_own = f"/_matrix/client/v3/login/sso/redirect/{PORTAL_IDP_ID}"
    answers["sso start at the portal's IdP"] = http(
        "GET", hs.url(f"{start_own}?{urlencode({'redirectUrl': CLIENT})}")
    )
    answers["sso start, refused redirectUrl"] = http(
        "GET", sso_start(portals, "javascript:alert(1)")
    )
    answers["sso start, no redirectUrl"] = http(
        "GET", hs.url(f"/_matrix/client/v3/login/sso/redirect/{IDP_ID}")
    )
    answers["target: refused redirectUrl"] = http(
        "GET",
        portals.eng.url(
            f"/_matrix/client/v3/login/sso/redirect/{IDP_ID}?"
            + urlencode({"redirectUrl": "javascript:alert(1)"})
        ),
    )
    answers["realm page"] = http(
        "GET", hs.url(f"{REALM}?{urlencode({'redirectUrl': CLIENT})}")
    )
    realm = SsoClient()
    answers["realm, unplaced"] = realm.request(
        "POST", hs.url(REALM), form={"redirectUrl": CLIENT}
    )
    answers["realm, on to the target"] = realm.request(
        "POST",
        hs.url(REALM),
        form={"redirectUrl": CLIENT, "idp": IDP_ID, "department": "Engineering"},
    )

    client = SsoClient()
    completion = to_completion(portals, client, {"department": "Engineering"}, "erin")
    tokens.add(parse_qs(urlsplit(completion).query)["loginToken"][0])
    answers["completion"] = client.request("GET", completion)
    answers["completion, replayed"] = client.request("GET", completion)

    client = SsoClient()
    confirm = to_completion(
        portals, client, {"department": "History"}, "hugo", UNLISTED_CLIENT
    )
    tokens.add(parse_qs(urlsplit(confirm).query)["loginToken"][0])
    answers["confirmation page"] = client.request("GET", confirm)

    client = SsoClient()
    bounce = client.follow(
        hs.url(f"{start_own}?{urlencode({'redirectUrl': CLIENT})}"),
        until=hs.url(BOUNCE),
        rewrite=any_login_hint("ivy"),
    )
    tokens.add(parse_qs(urlsplit(bounce).query)["loginToken"][0])
    answers["bounce, from another browser"] = SsoClient().request("GET", bounce)
    answers["bounce"] = client.request("GET", bounce)

    crafted = urlencode({"session": "x", "loginToken": CRAFTED_TOKEN})
    answers["wrong method"] = http("POST", hs.url(f"{COMPLETE}?{crafted}"), {})
    answers["unknown page"] = http("GET", hs.url(f"{PAGES}nope?{crafted}"))
    answers["pages root"] = http("GET", hs.url(f"{PAGES.rstrip('/')}?{crafted}"))
    answers["realm page, token in the query"] = http(
        "GET", hs.url(f"{REALM}?{urlencode({'redirectUrl': CLIENT})}&{crafted}")
    )
    tokens.add(CRAFTED_TOKEN)
    yield answers, tokens


KINDS = [
    "sso start",
    "sso start at the portal's IdP",
    "sso start, refused redirectUrl",
    "sso start, no redirectUrl",
    "target: refused redirectUrl",
    "realm page",
    "realm, unplaced",
    "realm, on to the target",
    "completion",
    "completion, replayed",
    "confirmation page",
    "bounce",
    "bounce, from another browser",
    "wrong method",
    "unknown page",
    "pages root",
    "realm page, token in the query",
]
HTML_PAGES = [
    "sso start, refused redirectUrl",
    "target: refused redirectUrl",
    "realm page",
    "realm, unplaced",
    "completion, replayed",
    "confirmation page",
    "bounce, from another browser",
]


def test_every_kind_of_answer_is_exercised(
    served: tuple[dict[str, HttpResponse], set[str]],
) -> None:
    answers, _ = served
    assert sorted(answers) == sorted(KINDS)
    statuses = {kind: answers[kind].status for kind in KINDS}
    assert statuses == {
        "sso start": 302,
        "sso start at the portal's IdP": 302,
        "sso start, refused redirectUrl": 400,
        "sso start, no redirectUrl": 400,
        "target: refused redirectUrl": 400,
        "realm page": 200,
        "realm, unplaced": 403,
        "realm, on to the target": 302,
        "completion": 302,
        "completion, replayed": 403,
        "confirmation page": 200,
        "bounce": 302,
        "bounce, from another browser": 403,
        "wrong method": 405,
        "unknown page": 404,
        "pages root": 404,
        "realm page, token in the query": 200,
    }


@pytest.mark.parametrize("kind", KINDS)
def test_answer_sends_no_referrer_and_is_not_stored(
    served: tuple[dict[str, HttpResponse], set[str]], kind: str
) -> None:
    answer = served[0][kind]
    assert answer.headers.get("referrer-policy") == "no-referrer", answer.headers
    directives = answer.headers.get("cache-control", "").replace(" ", "").split(",")
    assert "no-store" in directives, answer.headers


@pytest.mark.parametrize("kind", HTML_PAGES)
def test_page_loads_nothing_from_another_origin(
    served: tuple[dict[str, HttpResponse], set[str]], kind: str
) -> None:
    answer = served[0][kind]
    assert answer.headers["content-type"].startswith("text/html")
    text = answer.body.decode("utf-8")
    resources = _RESOURCE.findall(text)
    foreign = [
        url
        for url in resources
        if not url.startswith("data:")
        and (":" in url.split("/")[0] or url.startswith("//"))
    ]
    assert foreign == []


def test_no_login_token_in_the_access_log(
    portals: PortalDeployment, served: tuple[dict[str, HttpResponse], set[str]]
) -> None:
    hs = portals.portal_proxy
    marker = f"{PAGES}nope?marker=leak-check"
    http("GET", hs.url(marker))
    wait_for_log(hs, marker.encode())  # every earlier request is logged by now
    log = hs.log_path.read_text()
    for token in served[1]:
        assert token not in log
    module_uris = [
        uri for uri in _LOGGED_URI.findall(log) if uri.startswith(PAGES.rstrip("/"))
    ]
    values = [v for uri in module_uris for v in _TOKEN_VALUE.findall(uri)]
    assert values and set(values) == {"<redacted>"}


def test_fallback_login_page_keeps_the_token_out_of_the_access_log(
    portals: PortalDeployment,
) -> None:
    """An SSO sign-in comes back to Synapse's fallback page with its token."""
    hs = portals.portal_proxy
    token = "syl_token_back_at_the_fallback_page"
    page = http("GET", hs.url(f"/_matrix/static/client/login/?loginToken={token}"))
    assert page.status == 200
    assert b"js/login.js" in page.body
    # Its scripts and images must not get the token as referrer.
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    marker = f"{PAGES}nope?marker=fallback-check"
    http("GET", hs.url(marker))
    wait_for_log(hs, marker.encode())
    log = hs.log_path.read_text()
    assert token not in log
    assert "/_matrix/static/client/login/?loginToken=<redacted>" in log
