"""MSC2778 appservice login on live Synapse, both login types, both error modes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from mautrix.client import Client
from mautrix.types import LoginType, UserID

from deploy.homeserver import Homeserver, HttpResponse, http
from synapse_login_redirect.target.appservice_login import STABLE_TYPE, UNSTABLE_TYPE
from tests.support.deployment import (
    BRIDGE,
    LIMITED_BRIDGE,
    LIMITED_BURST,
    MSC4190_BRIDGE,
    OTHER_BRIDGE,
    PASSWORD,
    Appservice,
    Deployment,
)
from tests.support.spec import validate_login_flows, validate_login_response

pytestmark = pytest.mark.live

TYPES = [STABLE_TYPE, UNSTABLE_TYPE]


def as_login(
    hs: Homeserver,
    login_type: str,
    user: str | None,
    *,
    token: str | None = BRIDGE.as_token,
    token_in: str = "header",
    body: dict[str, Any] | None = None,
) -> HttpResponse:
    """POST /login as an appservice would, the token in the header or the query."""
    content: dict[str, Any] = {"type": login_type}
    if user is not None:
        content["identifier"] = {"type": "m.id.user", "user": user}
    content.update(body or {})
    path = "/_matrix/client/v3/login"
    headers = {}
    if token is not None and token_in == "header":
        headers["Authorization"] = f"Bearer {token}"
    elif token is not None:
        path += f"?access_token={token}"
    return http("POST", hs.url(path), content, headers=headers)


def register(hs: Homeserver, appservice: Appservice, localpart: str) -> None:
    response = http(
        "POST",
        hs.url("/_matrix/client/v3/register"),
        {"type": STABLE_TYPE, "username": localpart},
        headers={"Authorization": f"Bearer {appservice.as_token}"},
    )
    assert response.status == 200, response


def deactivate(hs: Homeserver, user_id: str) -> None:
    hs.register_user("admin", PASSWORD, admin=True)
    token = hs.password_login("admin", PASSWORD).json()["access_token"]
    response = http(
        "POST",
        hs.url(f"/_synapse/admin/v1/deactivate/{user_id}"),
        {"erase": False},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status == 200, response


@pytest.fixture(scope="module")
def bridged(deployment: Deployment) -> Iterator[Deployment]:
    """Bridge users on every server that knows the appservices."""
    for hs in (deployment.target, deployment.as_compat, deployment.vanilla):
        register(hs, BRIDGE, "bridge_alice")
        register(hs, BRIDGE, "bridge_deact")
        register(hs, OTHER_BRIDGE, "other_carol")
        deactivate(hs, f"@bridge_deact:{hs.server_name}")
    register(deployment.as_limited, LIMITED_BRIDGE, "lim_user")
    register(deployment.as_limited, BRIDGE, "bridge_free")
    yield deployment


def user_token(hs: Homeserver) -> str:
    token: str = hs.password_login("alice", PASSWORD).json()["access_token"]
    return token


# name -> (login arguments, given the homeserver; expected status and errcode)
ERROR_MATRIX: dict[str, tuple[Any, int, str]] = {
    "no token": (
        lambda hs: {"user": "bridge_alice", "token": None},
        403,
        "M_FORBIDDEN",
    ),
    "bogus token": (
        lambda hs: {"user": "bridge_alice", "token": "nope"},
        403,
        "M_FORBIDDEN",
    ),
    "a user's token": (
        lambda hs: {"user": "bridge_alice", "token": user_token(hs)},
        403,
        "M_FORBIDDEN",
    ),
    "as_token only in the body": (
        lambda hs: {
            "user": "bridge_alice",
            "token": None,
            "body": {"access_token": BRIDGE.as_token},
        },
        403,
        "M_FORBIDDEN",
    ),
    "never registered": (lambda hs: {"user": "bridge_ghost"}, 403, "M_FORBIDDEN"),
    "outside the namespace": (lambda hs: {"user": "alice"}, 403, "M_EXCLUSIVE"),
    "another appservice's user": (
        lambda hs: {"user": "other_carol"},
        403,
        "M_EXCLUSIVE",
    ),
    "MSC4190 appservice": (
        lambda hs: {"user": "m4190_dave", "token": MSC4190_BRIDGE.as_token},
        400,
        "M_APPSERVICE_LOGIN_UNSUPPORTED",
    ),
    "top-level user field": (
        lambda hs: {"user": None, "body": {"user": "bridge_alice"}},
        400,
        "M_INVALID_PARAM",
    ),
    "third-party identifier": (
        lambda hs: {
            "user": None,
            "body": {"identifier": {"type": "m.id.thirdparty", "medium": "email"}},
        },
        400,
        "M_INVALID_PARAM",
    ),
    "user of another server": (
        lambda hs: {"user": "@bridge_alice:elsewhere.test"},
        403,
        "M_FORBIDDEN",
    ),
    "deactivated user": (
        lambda hs: {"user": "bridge_deact"},
        403,
        "M_USER_DEACTIVATED",
    ),
    # Synapse itself answers 200 with a token that whoami then refuses.
    "the appservice's sender": (lambda hs: {"user": "bridgebot"}, 403, "M_FORBIDDEN"),
}

# Cases where Synapse's own answer is not an error.
SYNAPSE_ACCEPTS = {"the appservice's sender"}


def call(hs: Homeserver, login_type: str, case: str) -> HttpResponse:
    arguments = ERROR_MATRIX[case][0](hs)
    return as_login(hs, login_type, arguments.pop("user"), **arguments)


@pytest.mark.parametrize("login_type", TYPES)
@pytest.mark.parametrize("case", list(ERROR_MATRIX))
def test_msc2778_errors(bridged: Deployment, login_type: str, case: str) -> None:
    _, status, errcode = ERROR_MATRIX[case]
    response = call(bridged.target, login_type, case)
    assert (response.status, response.json().get("errcode")) == (status, errcode), (
        response
    )
    assert response.json()["error"]


@pytest.mark.parametrize("login_type", TYPES)
@pytest.mark.parametrize("case", list(ERROR_MATRIX))
def test_synapse_error_mode_answers_as_synapse_does(
    bridged: Deployment, login_type: str, case: str
) -> None:
    """Both types get exactly what vanilla Synapse answers for the stable type."""
    ours = call(bridged.as_compat, login_type, case)
    reference = call(bridged.vanilla, STABLE_TYPE, case)
    if case in SYNAPSE_ACCEPTS:
        assert (ours.status, reference.status) == (200, 200)
        return
    assert ours.status >= 400
    assert (ours.status, ours.body) == (reference.status, reference.body)


@pytest.mark.parametrize("login_type", TYPES)
@pytest.mark.parametrize(
    ("user", "token_in"),
    [("bridge_alice", "header"), ("@bridge_alice:target.test", "query")],
)
def test_success_gives_working_token(
    bridged: Deployment, login_type: str, user: str, token_in: str
) -> None:
    hs = bridged.target
    response = as_login(hs, login_type, user, token_in=token_in)
    assert response.status == 200, response
    body = response.json()
    validate_login_response(body)
    localpart = user.removeprefix("@").split(":")[0]
    assert body["user_id"] == f"@{localpart}:{hs.server_name}"
    assert body["well_known"]["m.homeserver"] == {
        "base_url": bridged.advertised_target_url
    }
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    whoami = http("GET", hs.url("/_matrix/client/v3/account/whoami"), headers=auth)
    assert whoami.json()["user_id"] == body["user_id"]
    assert whoami.json()["device_id"] == body["device_id"]
    sync = http("GET", hs.url("/_matrix/client/v3/sync?timeout=0"), headers=auth)
    assert sync.status == 200 and "next_batch" in sync.json()


@pytest.mark.parametrize("login_type", TYPES)
def test_device_id_and_display_name_are_honoured(
    bridged: Deployment, login_type: str
) -> None:
    hs = bridged.target
    device = f"DEV{len(login_type)}"
    response = as_login(
        hs,
        login_type,
        "bridge_alice",
        body={"device_id": device, "initial_device_display_name": "Bridge device"},
    )
    assert response.status == 200, response
    assert response.json()["device_id"] == device
    auth = {"Authorization": f"Bearer {response.json()['access_token']}"}
    shown = http("GET", hs.url(f"/_matrix/client/v3/devices/{device}"), headers=auth)
    assert shown.json()["display_name"] == "Bridge device"


@pytest.mark.parametrize("login_type", TYPES)
def test_compat_mode_logs_in_both_types(bridged: Deployment, login_type: str) -> None:
    response = as_login(bridged.as_compat, login_type, "bridge_alice")
    assert response.status == 200, response
    validate_login_response(response.json())


def test_both_types_listed_in_login_flows(bridged: Deployment) -> None:
    for hs in (bridged.target, bridged.as_compat):
        flows = http("GET", hs.url("/_matrix/client/v3/login")).json()
        validate_login_flows(flows)
        types = [flow["type"] for flow in flows["flows"]]
        assert STABLE_TYPE in types and UNSTABLE_TYPE in types, (hs.name, types)
    vanilla = http("GET", bridged.vanilla.url("/_matrix/client/v3/login")).json()
    assert UNSTABLE_TYPE not in [flow["type"] for flow in vanilla["flows"]]


def test_rate_limited_appservice_is_limited(bridged: Deployment) -> None:
    hs = bridged.as_limited
    free = [
        as_login(hs, STABLE_TYPE, "bridge_free").status
        for _ in range(LIMITED_BURST + 2)
    ]
    assert free == [200] * (LIMITED_BURST + 2)
    statuses = []
    for login_type in [STABLE_TYPE, UNSTABLE_TYPE] * LIMITED_BURST:
        response = as_login(hs, login_type, "lim_user", token=LIMITED_BRIDGE.as_token)
        statuses.append(response.status)
    assert statuses[:LIMITED_BURST] == [200] * LIMITED_BURST
    assert set(statuses[LIMITED_BURST:]) == {429}
    limited = as_login(hs, UNSTABLE_TYPE, "lim_user", token=LIMITED_BRIDGE.as_token)
    assert limited.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert limited.json()["retry_after_ms"] > 0


def test_mautrix_appservice_login(bridged: Deployment) -> None:
    hs = bridged.target

    async def scenario() -> str:
        client = Client(
            mxid=UserID(f"@bridge_alice:{hs.server_name}"),
            base_url=hs.base_url,
            token=BRIDGE.as_token,
        )
        try:
            await client.login(login_type=LoginType.APPSERVICE)
            assert client.api.token != BRIDGE.as_token
            return str(await client.whoami())
        finally:
            await client.api.session.close()

    assert f"@bridge_alice:{hs.server_name}" in asyncio.run(scenario())
