"""Refuse login fields of the wrong JSON type before Synapse reads them.

Synapse answers 500 to some of these (a list as ``identifier.user``, a number
as an e-mail ``address`` or as ``device_id``; a number as ``token`` on
PostgreSQL; text with an unpaired surrogate such as ``"\\ud800"``, which is
valid JSON but not Unicode, or with NUL on PostgreSQL). Every login
the gateway hooks passes this check first, whatever the module's role; it only
refuses bodies Synapse would refuse anyway. It also copies an ``m.id.phone``
identifier's ``phone`` (the spec's name) to ``number``, without which Synapse
answers 500.
"""

from __future__ import annotations

from typing import Any

from synapse.module_api.errors import Codes, SynapseError

from synapse_login_redirect._synapse import SynapseRequest
from synapse_login_redirect.gateway.limits import MAX_LOGIN_BODY, body_size
from synapse_login_redirect.gateway.request_body import (
    peek_json_object,
    replace_json_body,
)
from synapse_login_redirect.target.well_known import LoginAnswer

# Fields that must be strings wherever they are present, in any login type.
_TOP_LEVEL = (
    "type",
    "user",
    "medium",
    "address",
    "device_id",
    "initial_device_display_name",
)
# And for Synapse's own types, their secret.
_SECRET = {
    "m.login.password": "password",
    "m.login.token": "token",
    "org.matrix.login.jwt": "token",
}
_IDENTIFIER = ("type", "user", "medium", "address", "country", "phone", "number")
_JSON_KINDS = {
    str: "string",
    dict: "object",
    list: "array",
    bool: "boolean",
    int: "number",
    float: "number",
}


async def check_login_input(request: SynapseRequest) -> LoginAnswer | None:
    """An interceptor: 413 ``M_TOO_LARGE`` for a body over ``MAX_LOGIN_BODY``
    (before it is parsed), Synapse's error for a body that is not a JSON
    object, 400 ``M_INVALID_PARAM`` for a mistyped field, else None."""
    if body_size(request) > MAX_LOGIN_BODY:
        raise SynapseError(
            413, f"A login may have at most {MAX_LOGIN_BODY} bytes", Codes.TOO_LARGE
        )
    body = peek_json_object(request)
    _check(body)
    identifier = body.get("identifier")
    if (
        isinstance(identifier, dict)
        and identifier.get("type") == "m.id.phone"
        and "phone" in identifier
        and "number" not in identifier
    ):
        identifier["number"] = identifier["phone"]
        replace_json_body(request, body)
    return None


def _check(body: dict[str, Any]) -> None:
    kind = body.get("type")
    secret = _SECRET.get(kind) if isinstance(kind, str) else None
    for name in (*_TOP_LEVEL, secret) if secret else _TOP_LEVEL:
        _must_be_string(body, name, name)
    identifier = body.get("identifier")
    if identifier is None:
        return
    if not isinstance(identifier, dict):
        raise _invalid("identifier", identifier, "an object")
    for name in _IDENTIFIER:
        _must_be_string(identifier, name, f"identifier.{name}")


def _must_be_string(fields: dict[str, Any], name: str, where: str) -> None:
    value = fields.get(name)
    if value is None:
        return
    if not isinstance(value, str):
        raise _invalid(where, value, "a string")
    if "\0" in value or not _is_unicode(value):
        raise SynapseError(
            400,
            f"'{where}' must be text without NUL characters or unpaired "
            "surrogates (\\u0000, \\ud800-\\udfff)",
            Codes.INVALID_PARAM,
        )


def _is_unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _invalid(where: str, value: Any, wanted: str) -> SynapseError:
    kind = _JSON_KINDS.get(type(value), type(value).__name__)
    return SynapseError(
        400, f"'{where}' must be {wanted}, not a JSON {kind}", Codes.INVALID_PARAM
    )
