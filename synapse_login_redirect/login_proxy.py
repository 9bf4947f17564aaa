"""Proxy mode: the portal posts the login to the target and relays the answer.

Sent once, never retried (a password must not be submitted twice), within a
configurable time. Failures become 502/504 ``M_UNKNOWN`` naming the target.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from synapse.module_api import ModuleApi
from synapse.module_api.errors import Codes, SynapseError
from twisted.internet import defer

from synapse_login_redirect.config import Target
from synapse_login_redirect.deadlines import call_with_deadline
from synapse_login_redirect.synapse_compat import HttpResponseException

logger = logging.getLogger(__name__)


class TargetUnreachable(SynapseError):
    """The target did not answer, or not with Matrix JSON."""

    def __init__(self, code: int, target: Target, what: str) -> None:
        super().__init__(
            code,
            f"The homeserver {target.public_name} {what}; please try again later.",
            Codes.UNKNOWN,
        )


class LoginProxy:
    def __init__(self, api: ModuleApi, timeout_seconds: float) -> None:
        self._api = api
        self._timeout = timeout_seconds

    async def post_login(
        self, target: Target, version: str, body: dict[str, Any], client_ip: str
    ) -> tuple[int, dict[str, Any]]:
        """POST ``body`` to the target's ``/login``; its status and JSON body."""
        url = f"{target.base_url}/_matrix/client/{version}/login"
        headers = {b"X-Forwarded-For": [client_ip.encode("ascii")]}
        try:
            answer = await call_with_deadline(
                self._timeout,
                self._api.http_client.post_json_get_json,
                url,
                body,
                headers,
            )
        except HttpResponseException as e:
            return e.code, _matrix_json(e.response, target)
        except defer.TimeoutError:
            raise TargetUnreachable(504, target, "did not answer in time") from None
        except SynapseError as e:
            if e.code == 504:  # Synapse's own timeout for the response headers
                raise TargetUnreachable(504, target, "did not answer in time") from None
            raise TargetUnreachable(502, target, "cannot be reached") from None
        except ValueError:
            raise TargetUnreachable(502, target, "answered with invalid JSON") from None
        except Exception as e:
            logger.warning("Login proxy to %s failed: %r", target.name, e)
            raise TargetUnreachable(502, target, "cannot be reached") from None
        if not isinstance(answer, dict):
            raise TargetUnreachable(502, target, "answered with invalid JSON")
        return 200, answer


def _matrix_json(raw: bytes, target: Target) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TargetUnreachable(
            502, target, "answered with an error that is not Matrix JSON"
        )
    return body
