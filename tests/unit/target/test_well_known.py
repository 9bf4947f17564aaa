"""The target role's pieces, without a homeserver."""

from __future__ import annotations

import asyncio
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from synapse.http.site import SynapseRequest
from twisted.web import http

from synapse_login_redirect.target.well_known import (
    Advertisement,
    hook_login,
    rewrite_redirect_url,
)

HS = "https://matrix.eng.example"


class FakeRequest:
    """The two attributes the rewrite touches, parsed as Twisted parses them."""

    def __init__(self, uri: bytes) -> None:
        self.uri = uri
        self.args = http.parse_qs(uri.partition(b"?")[2], keep_blank_values=True)


def rewrite(uri: bytes) -> FakeRequest:
    request = FakeRequest(uri)
    rewrite_redirect_url(cast(SynapseRequest, request), HS)
    return request


def test_rewrite_sets_args_and_uri_consistently() -> None:
    request = rewrite(
        b"/_matrix/client/v3/login/sso/redirect/oidc?redirectUrl="
        b"https%3A%2F%2Fapp.example%2F%3Fhomeserver%3Devil%26s%3D1&org.example=1"
    )
    [url] = request.args[b"redirectUrl"]
    assert parse_qs(urlsplit(url).query) == {b"s": [b"1"], b"homeserver": [HS.encode()]}
    path, _, query = request.uri.partition(b"?")
    assert path == b"/_matrix/client/v3/login/sso/redirect/oidc"
    assert http.parse_qs(query) == {b"org.example": [b"1"], b"redirectUrl": [url]}


def test_rewrite_keeps_other_parameters_byte_for_byte() -> None:
    request = rewrite(b"/r?a=%FF%2B+b&redirectUrl=https%3A%2F%2Fapp.example%2F&z")
    assert request.uri.startswith(b"/r?a=%FF%2B+b&z&redirectUrl=")
    assert request.args[b"a"] == [b"\xff+ b"]


def test_rewrite_leaves_missing_and_unusable_redirect_urls() -> None:
    for uri in (
        b"/_matrix/client/v3/login/sso/redirect",
        b"/_matrix/client/v3/login/sso/redirect?redirectUrl=",
        b"/_matrix/client/v3/login/sso/redirect?redirectUrl=%FF%FE",
        b"/_matrix/client/v3/login/sso/redirect?redirectUrl=relative",
        b"/_matrix/client/v3/login/sso/redirect?redirectUrl=%FF%FE&x=%FF",
    ):
        before = FakeRequest(uri)
        after = rewrite(uri)
        assert (after.uri, after.args) == (before.uri, before.args)


def test_advertisement_replaces_synapse_well_known_and_keeps_extras() -> None:
    response: dict[str, Any] = {
        "user_id": "@a:eng.example",
        "well_known": {
            "m.homeserver": {"base_url": "https://synapse.internal/"},
            "m.identity_server": {"base_url": "https://vector.im"},
            "org.example.extra": {"x": 1},
        },
    }
    Advertisement(HS, base_cs_url=True).amend_login_response(response)
    assert response["well_known"] == {
        "m.homeserver": {"base_url": HS},
        "m.identity_server": {"base_url": "https://vector.im"},
        "org.example.extra": {"x": 1},
    }
    assert response["base_cs_url"] == HS


def test_advertisement_with_identity_server_and_no_synapse_well_known() -> None:
    response: dict[str, Any] = {"user_id": "@a:eng.example"}
    Advertisement(HS, identity_server="https://id.example").amend_login_response(
        response
    )
    assert response == {
        "user_id": "@a:eng.example",
        "well_known": {
            "m.homeserver": {"base_url": HS},
            "m.identity_server": {"base_url": "https://id.example"},
        },
    }


def test_login_hook_amends_only_success() -> None:
    answers: list[tuple[int, Any]] = [
        (200, {"user_id": "@a:b"}),
        (403, {"errcode": "M_FORBIDDEN"}),
    ]

    async def synapse_login(request: Any) -> tuple[int, Any]:
        return answers.pop(0)

    hooked = hook_login(Advertisement(HS))(synapse_login)
    request = cast(SynapseRequest, None)

    async def twice() -> list[Any]:
        return [await hooked(request), await hooked(request)]

    ok, failed = asyncio.run(twice())
    assert ok == (
        200,
        {"user_id": "@a:b", "well_known": {"m.homeserver": {"base_url": HS}}},
    )
    assert failed == (403, {"errcode": "M_FORBIDDEN"})
