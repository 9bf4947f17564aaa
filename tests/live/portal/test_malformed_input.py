"""Odd input at every endpoint the module touches: a clear 4xx, never a 500.

Against a target (eng, sqlite), the redirecting portal (sqlite) and the
proxying SSO portal (PostgreSQL). Without the module's input check, vanilla
Synapse answers 500 to the mistyped login fields below.
"""

from __future__ import annotations

import json

import pytest

from deploy.homeserver import http
from synapse_login_redirect.gateway.limits import MAX_LOGIN_BODY
from tests.support.deployment import PASSWORD as USER_PASSWORD
from tests.support.portal_deployment import IDP_ID, PortalDeployment

pytestmark = pytest.mark.live

SERVERS = ("eng", "portal", "portal_proxy")
LOGIN = "/_matrix/client/v3/login"
PAGES = "/_synapse/client/login_redirect"
SSO = "/_matrix/client/v3/login/sso/redirect"
PASSWORD = {"type": "m.login.password", "password": "wrong"}


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "m.login.token", "token": 5}, "token"),
        ({**PASSWORD, "identifier": {"type": "m.id.user", "user": ["a"]}}, "user"),
        (
            {
                **PASSWORD,
                "identifier": {
                    "type": "m.id.thirdparty",
                    "medium": "email",
                    "address": 5,
                },
            },
            "address",
        ),
        ({**PASSWORD, "user": "hugo", "device_id": 42}, "device_id"),
    ],
)
def test_mistyped_login_fields_get_a_400_naming_them(
    portals: PortalDeployment, server: str, body: dict[str, object], field: str
) -> None:
    answer = http("POST", getattr(portals, server).url(LOGIN), body)
    assert answer.status == 400, answer
    assert answer.json()["errcode"] == "M_INVALID_PARAM"
    assert f"{field}' must be a string" in answer.json()["error"]


@pytest.mark.parametrize("server", SERVERS)
def test_phone_identifier_as_the_spec_names_it_is_answered(
    portals: PortalDeployment, server: str
) -> None:
    """``phone`` without Synapse's old ``number``: no such user, not a 500."""
    phone = {"type": "m.id.phone", "country": "GB", "phone": "07700900001"}
    body = {**PASSWORD, "identifier": phone}
    answer = http("POST", getattr(portals, server).url(LOGIN), body)
    assert (answer.status, answer.json()["errcode"]) == (403, "M_FORBIDDEN")


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [
        ("GET", f"{SSO}?redirectUrl=%FF%FE", None),
        ("GET", f"{SSO}/{IDP_ID}?redirectUrl=" + "a" * 5000, None),
        ("GET", f"{SSO}?redirectUrl=http://[::1/", None),
        ("GET", f"{SSO}?redirectUrl=http://client.test:99999/", None),
        ("GET", f"{PAGES}/realm?redirectUrl=%FF", None),
        ("POST", f"{PAGES}/realm", b""),
        ("POST", f"{PAGES}/realm", b"\xff\xfe"),
        ("POST", f"{PAGES}/realm", b"redirectUrl=http://client.test/&user=%FF"),
        ("POST", f"{PAGES}/realm", b"redirectUrl=http://client.test/&department=No"),
        (
            "POST",
            f"{PAGES}/realm",
            b"redirectUrl=http://client.test/&user=" + b"x" * 10**5,
        ),
        ("GET", f"{PAGES}/bounce", None),
        ("GET", f"{PAGES}/bounce?session=x&loginToken=y", None),
        ("GET", f"{PAGES}/complete?session=%FF&loginToken=x", None),
        ("GET", f"{PAGES}/complete?session=x", None),
        ("POST", f"{PAGES}/complete", b""),
        ("PUT", f"{PAGES}/realm", b""),
        ("GET", f"{PAGES}/realm/extra", None),
    ],
)
def test_odd_sso_requests_get_a_clear_refusal(
    portals: PortalDeployment, method: str, path: str, form: bytes | None
) -> None:
    headers = FORM if form is not None else None
    answer = http(
        method, portals.portal_proxy.url(path), raw_body=form, headers=headers
    )
    assert 400 <= answer.status < 500, answer
    assert "location" not in answer.headers
    if answer.headers["content-type"].startswith("application/json"):
        assert json.loads(answer.body)["errcode"].startswith("M_")
    else:
        assert answer.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("server", ["portal", "portal_proxy"])
@pytest.mark.parametrize("user", ["@", "x" * 300, "al ice", "@:eng.test"])
def test_users_who_cannot_exist_are_not_routed(
    portals: PortalDeployment, server: str, user: str
) -> None:
    """Not sent on (no 307, no proxying): the portal's own Synapse refuses them."""
    body = {**PASSWORD, "identifier": {"type": "m.id.user", "user": user}}
    answer = http("POST", getattr(portals, server).url(LOGIN), body)
    assert "location" not in answer.headers
    assert (answer.status, answer.json()["errcode"]) == (403, "M_FORBIDDEN"), answer


@pytest.mark.parametrize("server", ["eng", "portal", "portal_proxy"])
def test_login_over_the_cap_is_refused_before_it_is_read(
    portals: PortalDeployment, server: str
) -> None:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "@erin:eng.test"},
        "password": USER_PASSWORD,
        "padding": "x" * MAX_LOGIN_BODY,
    }
    hs = getattr(portals, server)
    answer = http("POST", hs.url("/_matrix/client/v3/login"), body)
    assert (answer.status, answer.json()["errcode"]) == (413, "M_TOO_LARGE"), answer
    del body["padding"]
    assert http("POST", hs.url("/_matrix/client/v3/login"), body).status in (200, 307)
