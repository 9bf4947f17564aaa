"""The target role on live Synapse: every successful login says where to go next."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from authlib.jose import jwt

from deploy.homeserver import Homeserver, HttpResponse, http
from tests.support.deployment import (
    AS_TOKEN,
    BRIDGE_USER_PREFIX,
    IDENTITY_SERVER,
    JWT_SECRET,
    PASSWORD,
    Deployment,
)
from tests.support.pin_login import PIN, PIN_TYPE
from tests.support.spec import validate_login_flows, validate_login_response

pytestmark = pytest.mark.live

LOGIN_PREFIXES = ["r0", "v3", "unstable", "api/v1"]


def login(
    hs: Homeserver, body: Any = None, *, version: str = "v3", **kwargs: Any
) -> HttpResponse:
    return http("POST", hs.url(f"/_matrix/client/{version}/login"), body, **kwargs)


def assert_advertises(response: HttpResponse, base_url: str) -> dict[str, Any]:
    assert response.status == 200, response
    body: dict[str, Any] = response.json()
    validate_login_response(body)
    assert body["well_known"]["m.homeserver"] == {"base_url": base_url}
    return body


@pytest.mark.parametrize("version", LOGIN_PREFIXES)
def test_password_login_advertises_configured_url_over_synapse_own(
    deployment: Deployment, version: str
) -> None:
    response = deployment.target.password_login("alice", PASSWORD, version=version)
    body = assert_advertises(response, deployment.advertised_target_url)
    assert "base_cs_url" not in body
    assert "m.identity_server" not in body["well_known"]


def test_vanilla_synapse_would_advertise_public_baseurl(deployment: Deployment) -> None:
    """The reference: without the module Synapse puts its public_baseurl there."""
    body = deployment.vanilla.password_login("alice", PASSWORD).json()
    assert body["well_known"] == {
        "m.homeserver": {"base_url": deployment.vanilla.base_url + "/"}
    }


@pytest.mark.parametrize("version", ["r0", "v3"])
def test_login_without_public_baseurl_gets_well_known_and_base_cs_url(
    deployment: Deployment, version: str
) -> None:
    hs = deployment.target_nopub
    response = hs.password_login("alice", PASSWORD, version=version)
    expected = f"http://localhost:{hs.port}"
    body = assert_advertises(response, expected)
    assert body["well_known"]["m.identity_server"] == {"base_url": IDENTITY_SERVER}
    assert body["base_cs_url"] == expected


def test_login_token_login_advertises(deployment: Deployment) -> None:
    hs = deployment.target
    token = hs.password_login("alice", PASSWORD).json()["access_token"]
    minted = http(
        "POST",
        hs.url("/_matrix/client/v1/login/get_token"),
        {},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert minted.status == 200, minted
    response = login(
        hs, {"type": "m.login.token", "token": minted.json()["login_token"]}
    )
    assert_advertises(response, deployment.advertised_target_url)


def test_jwt_login_advertises(deployment: Deployment) -> None:
    token = jwt.encode({"alg": "HS256"}, {"sub": "alice"}, JWT_SECRET).decode()
    response = login(
        deployment.target, {"type": "org.matrix.login.jwt", "token": token}
    )
    assert response.json()["user_id"] == f"@alice:{deployment.target.server_name}"
    assert_advertises(response, deployment.advertised_target_url)


def test_appservice_login_advertises(deployment: Deployment) -> None:
    hs = deployment.target
    auth = {"Authorization": f"Bearer {AS_TOKEN}"}
    localpart = f"{BRIDGE_USER_PREFIX}wk{time.monotonic_ns()}"
    registered = http(
        "POST",
        hs.url("/_matrix/client/v3/register"),
        {"type": "m.login.application_service", "username": localpart},
        headers=auth,
    )
    assert registered.status == 200, registered
    response = login(
        hs,
        {
            "type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": localpart},
        },
        headers=auth,
    )
    assert_advertises(response, deployment.advertised_target_url)


def test_another_modules_login_type_advertises(deployment: Deployment) -> None:
    response = login(
        deployment.target,
        {
            "type": PIN_TYPE,
            "identifier": {"type": "m.id.user", "user": "alice"},
            "pin": PIN,
        },
    )
    assert_advertises(response, deployment.advertised_target_url)


FAILED_LOGINS: dict[str, dict[str, Any]] = {
    "wrong password": {
        "body": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "wrong",
        }
    },
    "unknown user": {
        "body": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "nobody"},
            "password": "x",
        }
    },
    "not json": {"raw_body": b"this is not json"},
    "json array": {"body": ["m.login.password"]},
    "no type": {"body": {"identifier": {"type": "m.id.user", "user": "alice"}}},
    "unknown type": {"body": {"type": "org.example.nope"}},
    "unknown identifier type": {
        "body": {"type": "m.login.password", "identifier": {"type": "m.id.nope"}}
    },
    "bogus login token": {"body": {"type": "m.login.token", "token": "forged"}},
    "bad jwt": {"body": {"type": "org.matrix.login.jwt", "token": "a.b.c"}},
    "wrong pin": {
        "body": {
            "type": PIN_TYPE,
            "identifier": {"type": "m.id.user", "user": "alice"},
            "pin": "0000",
        }
    },
}


@pytest.mark.parametrize("case", sorted(FAILED_LOGINS))
def test_failed_login_is_byte_for_byte_synapse_own(
    deployment: Deployment, case: str
) -> None:
    ours = login(deployment.target, **FAILED_LOGINS[case])
    reference = login(deployment.vanilla, **FAILED_LOGINS[case])
    assert ours.status >= 400
    assert (ours.status, ours.body) == (reference.status, reference.body)
    assert _headers(ours) == _headers(reference)


def test_login_flows_are_synapse_own_plus_unstable_appservice_type(
    deployment: Deployment,
) -> None:
    ours = http("GET", deployment.target.url("/_matrix/client/v3/login")).json()
    reference = http("GET", deployment.vanilla.url("/_matrix/client/v3/login")).json()
    validate_login_flows(ours)
    unstable = {"type": "uk.half-shot.msc2778.login.application_service"}
    assert unstable in ours["flows"]
    assert [flow for flow in ours["flows"] if flow != unstable] == reference["flows"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_matrix/client/versions"),
        ("GET", "/_matrix/media/v3/config"),
        ("GET", "/_matrix/client/v3/nonexistent"),
        ("GET", "/_matrix/nonexistent"),
        ("GET", "/_matrix"),
        ("OPTIONS", "/_matrix/client/v3/login"),
    ],
)
def test_unauthenticated_requests_pass_through(
    deployment: Deployment, method: str, path: str
) -> None:
    ours = http(method, deployment.target.url(path))
    reference = http(method, deployment.vanilla.url(path))
    assert (ours.status, ours.body) == (reference.status, reference.body)
    assert _headers(ours) == _headers(reference)


def test_client_well_known_is_synapse_own(deployment: Deployment) -> None:
    response = http("GET", deployment.target.url("/.well-known/matrix/client"))
    assert response.status == 200
    assert (
        response.json()["m.homeserver"]["base_url"] == deployment.target.base_url + "/"
    )


@pytest.mark.parametrize(
    "path",
    ["/_matrix/client/v3/sync?timeout=0", "/_matrix/client/v1/media/config"],
)
def test_authenticated_requests_pass_through(deployment: Deployment, path: str) -> None:
    for hs in (deployment.target, deployment.vanilla):
        token = hs.password_login("alice", PASSWORD).json()["access_token"]
        response = http(
            "GET", hs.url(path), headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status == 200, (hs.name, response)
        assert isinstance(response.json(), dict)


def _headers(response: HttpResponse) -> dict[str, str]:
    """The headers that should match between two servers: all but the clock."""
    return {k: v for k, v in response.headers.items() if k != "date"}


def test_response_body_is_json_object(deployment: Deployment) -> None:
    """Guard for the tests above: the target answers JSON, not an HTML error page."""
    response = deployment.target.password_login("alice", PASSWORD)
    assert response.headers["content-type"] == "application/json"
    assert isinstance(json.loads(response.body), dict)
