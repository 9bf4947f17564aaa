"""Reading a login request's body and arguments, and replacing its body."""

from __future__ import annotations

import io
import json
from typing import Any

from synapse.http.site import SynapseRequest


def peek_json_object(request: SynapseRequest) -> dict[str, Any] | None:
    """The request body as a JSON object, leaving it readable for Synapse."""
    content = request.content
    if content is None:
        return None
    content.seek(0)
    raw = content.read()
    content.seek(0)
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


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
