"""Reading a login request's body and arguments, and replacing its body."""

from __future__ import annotations

import io
import json
from typing import Any

from synapse.module_api import parse_json_object_from_request

from synapse_login_redirect._synapse import SynapseRequest


def peek_json_object(request: SynapseRequest) -> dict[str, Any]:
    """The request body as a JSON object, leaving it readable for Synapse.

    Parsed by Synapse's own parser, so a body Synapse would refuse (not UTF-8,
    not JSON, NaN, too deep, not an object...) gets Synapse's own error: 400
    ``M_NOT_JSON`` or ``M_BAD_JSON``. (Python's recursion limit makes "too
    deep" depend on the stack: here it is a couple of levels shallower, about
    950, than in Synapse's own read.)
    """
    _rewind(request)
    try:
        return parse_json_object_from_request(request)
    finally:
        _rewind(request)


def raw_body(request: SynapseRequest) -> bytes:
    """The request body as Synapse reads it, leaving it readable."""
    if request.content is None:
        return b""
    _rewind(request)
    data = request.content.read()
    _rewind(request)
    return bytes(data)


def _rewind(request: SynapseRequest) -> None:
    if request.content is not None:
        request.content.seek(0)


def replace_json_body(request: SynapseRequest, body: dict[str, Any]) -> None:
    """Give Synapse ``body`` instead of what the client sent."""
    request.content = io.BytesIO(json.dumps(body).encode("utf-8"))


def query_arg(request: SynapseRequest, name: str) -> str | None:
    """A query or form argument as text, or None if absent or not UTF-8."""
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    try:
        return str(values[0].decode("utf-8"))
    except UnicodeDecodeError:
        return None
