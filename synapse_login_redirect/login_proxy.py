"""Proxy mode: the portal posts the login to the target and relays the answer.

Sent once, never retried (a password must not be submitted twice), within a
configurable time. Failures become 502/504 ``M_UNKNOWN`` naming the target.

The hop uses a bare Twisted ``Agent`` with its own keep-alive pool rather than
``ModuleApi.http_client``: the targets are the operator's own homeservers, so
Synapse's outgoing-request machinery (redirect and cookie agents, a
cooperative body producer, tracing) only adds latency to every login.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from synapse.module_api import make_deferred_yieldable
from synapse.module_api.errors import Codes, SynapseError
from twisted.internet import defer, reactor
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from synapse_login_redirect.config import Target
from synapse_login_redirect.deadlines import call_with_deadline

logger = logging.getLogger(__name__)


class TargetUnreachable(SynapseError):
    """The target did not answer, or not with Matrix JSON."""

    def __init__(self, code: int, target: Target, what: str) -> None:
        super().__init__(
            code,
            f"The homeserver {target.public_name} {what}; please try again later.",
            Codes.UNKNOWN,
        )


@implementer(IBodyProducer)
class _JsonBody:
    """A request body written in one go (Twisted's FileBodyProducer takes turns)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self._data = json.dumps(body).encode("utf-8")
        self.length = len(self._data)

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:  # noqa: N802
        # an IConsumer (typed as Any: mypy reads zope interfaces without self)
        consumer.write(self._data)
        return defer.succeed(None)

    def pauseProducing(self) -> None:  # noqa: N802
        pass

    def resumeProducing(self) -> None:  # noqa: N802
        pass

    def stopProducing(self) -> None:  # noqa: N802
        pass


class LoginProxy:
    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        # Keep-alive connections for concurrent logins; idle ones closed after
        # two minutes (as Synapse's own client does).
        pool.maxPersistentPerHost = 20
        pool.cachedConnectionTimeout = 120
        self._agent = Agent(reactor, connectTimeout=timeout_seconds, pool=pool)  # type: ignore[no-untyped-call]

    async def post_login(
        self,
        target: Target,
        version: str,
        body: dict[str, Any],
        client_ip: str,
        user_agent: bytes | None,
    ) -> tuple[int, dict[str, Any]]:
        """POST ``body`` to the target's ``/login``, with the client's address
        in ``X-Forwarded-For`` and its ``User-Agent``: the status and JSON body.
        """
        url = f"{target.base_url}/_matrix/client/{version}/login"
        headers = Headers(
            {
                b"Content-Type": [b"application/json"],
                b"X-Forwarded-For": [client_ip.encode("ascii")],
            }
        )
        if user_agent is not None:
            headers.setRawHeaders(b"User-Agent", [user_agent])
        try:
            code, raw = await call_with_deadline(
                self._timeout, self._post, url, body, headers
            )
        except defer.TimeoutError:
            raise TargetUnreachable(504, target, "did not answer in time") from None
        except Exception as e:
            logger.warning("Login proxy to %s failed: %r", target.name, e)
            raise TargetUnreachable(502, target, "cannot be reached") from None
        return code, _matrix_json(raw, target, code)

    async def _post(
        self, url: str, body: dict[str, Any], headers: Headers
    ) -> tuple[int, bytes]:
        producer = cast(IBodyProducer, _JsonBody(body))
        response = await make_deferred_yieldable(
            self._agent.request(b"POST", url.encode("ascii"), headers, producer)
        )
        return response.code, await make_deferred_yieldable(readBody(response))


def _matrix_json(raw: bytes, target: Target, code: int) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        what = (
            "answered with invalid JSON"
            if code == 200
            else ("answered with an error that is not Matrix JSON")
        )
        raise TargetUnreachable(502, target, what)
    return body
