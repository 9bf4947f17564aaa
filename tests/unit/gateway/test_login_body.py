"""The one reader of a login body: what each role reads, and what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synapse.module_api.errors import SynapseError

from synapse_login_redirect.gateway.login_body import Identifier, LoginBody

SECRETS = {
    "m.login.password": "password",
    "m.login.token": "token",
    "org.matrix.login.jwt": "token",
}
# The fields Synapse reads as text in every login type.
TOP_LEVEL = "type user medium address device_id initial_device_display_name".split()
IDENTIFIER_FIELDS = ("type", "user", "medium", "address", "country", "phone")

_TEXT = st.one_of(
    st.sampled_from(["", "alice", "@a:b.example", "a@b.example", "email", "\0"]),
    st.sampled_from(["\ud800", "m.id.user", "m.id.thirdparty", "m.id.phone"]),
    st.text(max_size=8),
)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _TEXT
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner)
    ),
    max_leaves=6,
)
_IDENTIFIERS = st.one_of(
    _JSON, st.dictionaries(st.sampled_from([*IDENTIFIER_FIELDS, "number"]), _JSON)
)
_TYPES = st.one_of(st.sampled_from([*SECRETS, "m.login.sso", "m.id.user"]), _JSON)
_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "type": _TYPES,
        "identifier": _IDENTIFIERS,
        "user": _JSON,
        "medium": _JSON,
        "address": _JSON,
        "password": _JSON,
        "token": _JSON,
        "device_id": _JSON,
        "initial_device_display_name": _JSON,
        "other": _JSON,
    },
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _storable(value: Any) -> bool:
    """Absent, or text Synapse can store."""
    if value is None:
        return True
    if not isinstance(value, str) or "\0" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _well_typed(body: dict[str, Any]) -> bool:
    names = TOP_LEVEL.copy()
    secret = SECRETS.get(body["type"]) if isinstance(body.get("type"), str) else None
    if secret is not None:
        names.append(secret)
    if not all(_storable(body.get(name)) for name in names):
        return False
    identifier = body.get("identifier")
    if identifier is None:
        return True
    return isinstance(identifier, dict) and all(
        _storable(identifier.get(name)) for name in (*IDENTIFIER_FIELDS, "number")
    )


@settings(max_examples=500)
@given(_BODIES)
def test_every_body_reads_and_text_fields_are_text_or_none(
    body: dict[str, Any],
) -> None:
    before = json.dumps(body)
    login = LoginBody.of(body)
    assert login.fields is body
    assert login.type == _text(body.get("type"))
    assert login.password == _text(body.get("password"))
    assert login.token == _text(body.get("token"))
    raw = body.get("identifier")
    if isinstance(raw, dict):
        assert login.identifier == Identifier(
            *(_text(raw.get(name)) for name in ("type", "user", "medium", "address"))
        )
    else:
        assert login.identifier is None
    login.with_phone_number()
    assert json.dumps(body) == before  # reading changes nothing


@settings(max_examples=500)
@given(_BODIES)
def test_check_refuses_exactly_the_mistyped_fields(body: dict[str, Any]) -> None:
    login = LoginBody.of(body)
    if _well_typed(body):
        login.check()
        return
    with pytest.raises(SynapseError) as info:
        login.check()
    assert (info.value.code, info.value.errcode) == (400, "M_INVALID_PARAM")
    assert info.value.msg.startswith("'")


@settings(max_examples=500)
@given(_BODIES)
def test_synapse_identifier_follows_synapse_order(body: dict[str, Any]) -> None:
    """The deprecated ``medium`` + ``address``, then ``user``, win over
    ``identifier``: whom Synapse logs in."""
    found = LoginBody.of(body).synapse_identifier
    medium, address, user = body.get("medium"), body.get("address"), body.get("user")
    if medium and address:
        assert found == Identifier(
            type="m.id.thirdparty", medium=_text(medium), address=_text(address)
        )
    elif user:
        assert found == Identifier(type="m.id.user", user=_text(user))
    else:
        assert found == Identifier.of(body.get("identifier"))


@settings(max_examples=500)
@given(_BODIES)
def test_phone_number_is_added_once_and_nothing_else_changes(
    body: dict[str, Any],
) -> None:
    amended = LoginBody.of(body).with_phone_number()
    identifier = body.get("identifier")
    needs_number = (
        isinstance(identifier, dict)
        and identifier.get("type") == "m.id.phone"
        and "phone" in identifier
        and "number" not in identifier
    )
    if not needs_number:
        assert amended is None
        return
    assert isinstance(identifier, dict) and amended is not None
    assert amended == {
        **body,
        "identifier": {**identifier, "number": identifier["phone"]},
    }
    assert list(amended) == list(body)
    assert LoginBody.of(amended).with_phone_number() is None


def test_deprecated_fields_name_whom_synapse_logs_in() -> None:
    login = LoginBody.of(
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "victim"},
            "user": "@me:hist.example",
            "password": "secret",
        }
    )
    assert login.identifier == Identifier(type="m.id.user", user="victim")
    assert login.synapse_identifier == Identifier(
        type="m.id.user", user="@me:hist.example"
    )
    assert (login.type, login.password, login.token) == (
        "m.login.password",
        "secret",
        None,
    )
