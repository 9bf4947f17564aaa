"""The login input check: mistyped fields get 400 M_INVALID_PARAM."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synapse.module_api.errors import SynapseError

from synapse_login_redirect.gateway.login_input import check_login_input
from tests.support.fakes import FakeRequest


def check(body: Any) -> FakeRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = FakeRequest(body=raw)
    coroutine = check_login_input(request.as_synapse())
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    assert done.value.value is None
    return request


def refusal(body: Any) -> str:
    with pytest.raises(SynapseError) as info:
        check(body)
    assert (info.value.code, info.value.errcode) == (400, "M_INVALID_PARAM")
    return info.value.msg


PASSWORD = {"type": "m.login.password", "password": "secret"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {**PASSWORD, "identifier": {"type": "m.id.user", "user": ["a"]}},
            "'identifier.user' must be a string, not a JSON array",
        ),
        (
            {
                **PASSWORD,
                "identifier": {
                    "type": "m.id.thirdparty",
                    "medium": "email",
                    "address": 5,
                },
            },
            "'identifier.address' must be a string, not a JSON number",
        ),
        ({**PASSWORD, "user": {"a": 1}}, "'user' must be a string, not a JSON object"),
        (
            {**PASSWORD, "user": "a", "device_id": 42},
            "'device_id' must be a string, not a JSON number",
        ),
        (
            {**PASSWORD, "identifier": "a"},
            "'identifier' must be an object, not a JSON string",
        ),
        (
            {"type": "m.login.password", "user": "a", "password": True},
            "'password' must be a string, not a JSON boolean",
        ),
        (
            {"type": "m.login.token", "token": 5},
            "'token' must be a string, not a JSON number",
        ),
        (
            {"type": "org.matrix.login.jwt", "token": [1]},
            "'token' must be a string, not a JSON array",
        ),
        ({"type": 1}, "'type' must be a string, not a JSON number"),
    ],
)
def test_mistyped_fields_are_refused_by_name(body: Any, message: str) -> None:
    assert refusal(body) == message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "m.login.\ud800"}, "type"),
        ({**PASSWORD, "user": "a\u0000"}, "user"),
        ({**PASSWORD, "password": "\udfff\ud800"}, "password"),
        (
            {**PASSWORD, "identifier": {"type": "m.id.user", "user": "a\udc00"}},
            "identifier.user",
        ),
    ],
)
def test_nul_and_unpaired_surrogates_are_refused_by_name(body: Any, field: str) -> None:
    """Valid JSON (``"\\ud800"``), but Synapse answers 500 to such text."""
    assert refusal(body).startswith(f"'{field}' must be text without NUL")


@pytest.mark.parametrize(
    "body",
    [
        {**PASSWORD, "identifier": {"type": "m.id.user", "user": "alice"}},
        {**PASSWORD, "user": "alice", "device_id": None},
        {"type": "m.login.token", "token": "syl_abc"},
        {"type": "com.example.login", "token": {"nested": True}},  # not ours to judge
        {"type": "m.login.sso"},
    ],
)
def test_well_typed_bodies_pass_unchanged(body: Any) -> None:
    assert json.loads(check(body).content.getvalue()) == body


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ([1, 2], "M_BAD_JSON"),
        (b"[" * 5000, "M_NOT_JSON"),
        (b'{"type": NaN}', "M_NOT_JSON"),
        (b'{"type": "m.login.password", "password": "\xff"}', "M_NOT_JSON"),
        (b"\xef\xbb\xbf{}", "M_NOT_JSON"),
    ],
)
def test_bodies_synapse_refuses_get_its_own_error(body: Any, errcode: str) -> None:
    with pytest.raises(SynapseError) as info:
        check(body)
    assert (info.value.code, info.value.errcode) == (400, errcode)


def test_phone_identifier_gets_the_number_synapse_reads() -> None:
    phone = {"type": "m.id.phone", "country": "GB", "phone": "07700900001"}
    request = check({**PASSWORD, "identifier": phone})
    sent = json.loads(request.content.getvalue())
    assert sent["identifier"] == {**phone, "number": "07700900001"}
