"""The one reader of a login's JSON body: what every role reads of it.

``LoginBody.of`` reads a body once into a frozen value: the login type, the
secret, the ``identifier`` as sent and the identifier Synapse logs in for a
password login. It never fails: a field of the wrong JSON type reads as
absent. ``LoginBody.check`` refuses, as the gateway does before Synapse reads
a login, the fields of the wrong type that Synapse would answer 500 to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attr
from synapse.module_api.errors import Codes, SynapseError

from synapse_login_redirect._synapse import SynapseRequest
from synapse_login_redirect.gateway.request_body import peek_json_object

PASSWORD_TYPE = "m.login.password"
TOKEN_TYPE = "m.login.token"
SSO_TYPE = "m.login.sso"
JWT_TYPE = "org.matrix.login.jwt"
# Identifier types.
USER_ID = "m.id.user"
THIRDPARTY_ID = "m.id.thirdparty"
PHONE_ID = "m.id.phone"

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
_SECRET = {PASSWORD_TYPE: "password", TOKEN_TYPE: "token", JWT_TYPE: "token"}
_IDENTIFIER = ("type", "user", "medium", "address", "country", "phone", "number")
_JSON_KINDS = {
    str: "string",
    dict: "object",
    list: "array",
    bool: "boolean",
    int: "number",
    float: "number",
}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Identifier:
    """Whom a login names: an ``identifier`` object's fields (None unless text)."""

    type: str | None = None
    user: str | None = None
    medium: str | None = None
    address: str | None = None

    @classmethod
    def of(cls, raw: Any) -> Identifier | None:
        """``raw`` read as an identifier; None unless it is a JSON object."""
        if not isinstance(raw, Mapping):
            return None
        return cls(
            type=_text(raw.get("type")),
            user=_text(raw.get("user")),
            medium=_text(raw.get("medium")),
            address=_text(raw.get("address")),
        )


@attr.s(frozen=True, slots=True, auto_attribs=True)
class LoginBody:
    """A login's JSON object, read once; text fields are None unless text."""

    fields: Mapping[str, Any]  # the object itself, as Synapse reads it
    type: str | None
    password: str | None
    token: str | None
    # ``identifier`` as sent: what appservice login (MSC2778) reads.
    identifier: Identifier | None
    # Whom Synapse logs in for a password login: the deprecated top-level
    # ``user``, then ``medium`` + ``address``, override ``identifier``.
    synapse_identifier: Identifier | None

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> LoginBody:
        """Read a login's JSON object."""
        return cls(
            fields=fields,
            type=_text(fields.get("type")),
            password=_text(fields.get("password")),
            token=_text(fields.get("token")),
            identifier=Identifier.of(fields.get("identifier")),
            synapse_identifier=_synapse_identifier(fields),
        )

    def check(self) -> None:
        """Raise 400 ``M_INVALID_PARAM`` for the first field of the wrong JSON
        type: not text (or text Synapse cannot store: NUL, unpaired
        surrogates) where Synapse reads text, or an ``identifier`` that is not
        an object. Fields Synapse does not read are not judged."""
        kind = self.type
        secret = _SECRET.get(kind) if kind is not None else None
        for name in (*_TOP_LEVEL, secret) if secret else _TOP_LEVEL:
            _must_be_text(self.fields, name, name)
        identifier = self.fields.get("identifier")
        if identifier is None:
            return
        if not isinstance(identifier, dict):
            raise _invalid("identifier", identifier, "an object")
        for name in _IDENTIFIER:
            _must_be_text(identifier, name, f"identifier.{name}")

    def with_phone_number(self) -> dict[str, Any] | None:
        """The body with an ``m.id.phone`` identifier's ``phone`` (the spec's
        name) copied to ``number`` (without which Synapse answers 500), if it
        has a phone and no number; else None."""
        identifier = self.fields.get("identifier")
        if (
            isinstance(identifier, dict)
            and identifier.get("type") == PHONE_ID
            and "phone" in identifier
            and "number" not in identifier
        ):
            number = identifier["phone"]
            return {**self.fields, "identifier": {**identifier, "number": number}}
        return None


def read_login(request: SynapseRequest) -> LoginBody:
    """The login body of ``request``, leaving it readable for Synapse; a body
    that is not a JSON object gets Synapse's own error (``peek_json_object``)."""
    return LoginBody.of(peek_json_object(request))


def _synapse_identifier(fields: Mapping[str, Any]) -> Identifier | None:
    identifier = Identifier.of(fields.get("identifier"))
    user = fields.get("user")
    if user:
        identifier = Identifier(type=USER_ID, user=_text(user))
    medium, address = fields.get("medium"), fields.get("address")
    if medium and address:
        identifier = Identifier(
            type=THIRDPARTY_ID, medium=_text(medium), address=_text(address)
        )
    return identifier


def _must_be_text(fields: Mapping[str, Any], name: str, where: str) -> None:
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
