"""Proxy mode: the portal posts the login to the target and relays the answer.

Sent once, never retried (a password must not be submitted twice), within a
configurable time. Nothing from the network is trusted: the login sent on is
at most ``MAX_LOGIN_BODY`` bytes (else 413 ``M_TOO_LARGE``, before anything
is sent), and at most ``MAX_ANSWER`` bytes of the target's answer are read. An
answer that is longer, or not a JSON object Synapse can send on (invalid
UTF-8 or JSON, NaN, an overflowing number, nesting deeper than
``MAX_ANSWER_DEPTH``), is 502 ``M_UNKNOWN`` naming the target; one that does
not come in time is 504. Logs name the target, the status and the size, never
a body.

The hop uses a bare Twisted ``Agent`` with its own keep-alive pool (built by
``wiring``) rather than ``ModuleApi.http_client``: the targets are the operator's own homeservers, so
Synapse's outgoing-request machinery (redirect and cookie agents, a
cooperative body producer, tracing) only adds latency to every login, and its
``get_json`` reads answers of any size.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, NoReturn, Protocol, cast

import attr
from synapse.module_api import make_deferred_yieldable
from synapse.module_api.errors import Codes, SynapseError
from twisted.internet import defer, error, protocol
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from synapse_login_redirect.config.portal import Target
from synapse_login_redirect.gateway.limits import MAX_LOGIN_BODY
from synapse_login_redirect.portal.deadlines import call_with_deadline
from synapse_login_redirect.web.urls import login_url

logger = logging.getLogger(__name__)

# Login requests and answers are a few hundred bytes.
MAX_ANSWER = 64 * 1024
# A login answer nests three levels (well_known.m.homeserver.base_url).
MAX_ANSWER_DEPTH = 32
VERSIONS_PATH = "/_matrix/client/versions"
# Names the portal's health checks in the targets' access logs.
HEALTH_CHECK_USER_AGENT = b"synapse-login-redirect health check"


class TargetError(SynapseError):
    """The target failed a login or a check; ``unreachable`` when it could
    not be reached or did not answer in time (not because of an answer).
    ``detail`` says what happened, for logs: never a body."""

    def __init__(
        self,
        code: int,
        target: Target,
        what: str,
        detail: str,
        *,
        unreachable: bool = False,
    ) -> None:
        super().__init__(
            code,
            f"The homeserver {target.public_name} {what}; please try again later.",
            Codes.UNKNOWN,
        )
        self.detail = detail
        self.unreachable = unreachable


class HttpAgent(Protocol):
    """What sends the proxy's requests: a Twisted ``Agent``."""

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None,
        body: IBodyProducer | None,
        /,
    ) -> defer.Deferred[IResponse]: ...


class _AnswerTooLarge(Exception):
    pass


@implementer(IBodyProducer)
class _Body:
    """A request body written in one go (Twisted's FileBodyProducer takes turns)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

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


class _CappedReader(protocol.Protocol):
    """Collects a response body, dropping the connection past ``cap`` bytes."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._data = bytearray()
        self.done: defer.Deferred[bytes] = defer.Deferred(lambda _: self._abort())

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.done.called:
            return
        if len(self._data) + len(data) > self._cap:
            self._abort()
            self.done.errback(_AnswerTooLarge())
            return
        self._data += data

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # noqa: N802
        if self.done.called:
            return
        # A body without a length ends when the connection does: PotentialDataLoss.
        if reason.check(ResponseDone, PotentialDataLoss):  # type: ignore[no-untyped-call]
            self.done.callback(bytes(self._data))
        else:
            self.done.errback(reason)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class LoginProxy:
    """Posts logins, login tokens and health checks to targets, within a
    deadline: ``agent`` sends each request, which gets ``timeout`` seconds of
    ``clock``."""

    _timeout: float
    _agent: HttpAgent
    _clock: IReactorTime

    async def post_login(
        self,
        target: Target,
        version: str,
        body: bytes,
        client_ip: str,
        user_agent: bytes | None,
    ) -> tuple[int, dict[str, Any]]:
        """POST ``body`` (JSON) to the target's ``/login``, with the client's
        address in ``X-Forwarded-For`` and its ``User-Agent``: the status and
        JSON object of the answer. Raises SynapseError (413) or TargetError."""
        if len(body) > MAX_LOGIN_BODY:
            raise SynapseError(
                413,
                f"A login sent on to the user's homeserver may have at most "
                f"{MAX_LOGIN_BODY} bytes",
                Codes.TOO_LARGE,
            )
        headers = Headers(
            {
                b"Content-Type": [b"application/json"],
                b"X-Forwarded-For": [client_ip.encode("ascii")],
            }
        )
        if user_agent is not None:
            headers.setRawHeaders(b"User-Agent", [user_agent])
        url = login_url(target.proxy_url, version)
        try:
            code, raw = await self._request(target, b"POST", url, headers, body)
            answer = _json_object(raw)
            if answer is None:
                raise TargetError(
                    502,
                    target,
                    "answered with invalid JSON"
                    if code == 200
                    else "answered with an error that is not Matrix JSON",
                    f"answered {code} with {len(raw)} bytes that are not a JSON "
                    "object to send on",
                )
        except TargetError as e:
            logger.warning("Login proxy to %s failed: %s", target.name, e.detail)
            raise
        return code, answer

    async def check(self, target: Target) -> None:
        """A health check: the target's ``/versions`` answers 200 in time.
        Raises TargetError."""
        url = target.proxy_url + VERSIONS_PATH
        headers = Headers({b"User-Agent": [HEALTH_CHECK_USER_AGENT]})
        code, _ = await self._request(target, b"GET", url, headers, None)
        if code != 200:
            what = f"answered {VERSIONS_PATH} with {code}"
            raise TargetError(502, target, what, what)

    async def _request(
        self,
        target: Target,
        method: bytes,
        url: str,
        headers: Headers,
        body: bytes | None,
    ) -> tuple[int, bytes]:
        """Send one request and read at most MAX_ANSWER bytes of the answer,
        within the deadline."""
        try:
            return await call_with_deadline(
                self._clock, self._timeout, self._send, method, url, headers, body
            )
        except defer.TimeoutError:
            raise TargetError(
                504,
                target,
                "did not answer in time",
                f"no answer within {self._timeout:g} s",
                unreachable=True,
            ) from None
        except (error.ConnectError, error.DNSLookupError) as e:
            raise TargetError(
                502, target, "cannot be reached", f"{e!s}", unreachable=True
            ) from None
        except _AnswerTooLarge:
            raise TargetError(
                502,
                target,
                "answered with too much data",
                f"answered with more than {MAX_ANSWER} bytes",
            ) from None
        except Exception as e:
            # e.g. the connection dropped mid-answer: the answer is at fault.
            raise TargetError(
                502, target, "broke off its answer", type(e).__name__
            ) from None

    async def _send(
        self, method: bytes, url: str, headers: Headers, body: bytes | None
    ) -> tuple[int, bytes]:
        producer = None if body is None else cast(IBodyProducer, _Body(body))
        # an IResponse (typed as Any: mypy reads zope interfaces without self)
        response: Any = await make_deferred_yieldable(
            self._agent.request(method, url.encode("ascii"), headers, producer)
        )
        reader = _CappedReader(MAX_ANSWER)
        response.deliverBody(reader)
        return response.code, await make_deferred_yieldable(reader.done)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} overflows")
    return value


_ANSWER_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float
)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` as a JSON object Synapse can encode again, or None."""
    try:
        answer = _ANSWER_DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(answer, dict) or _too_deep(answer):
        return None
    return answer


def _too_deep(value: Any) -> bool:
    """Whether JSON containers nest deeper than MAX_ANSWER_DEPTH in ``value``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > MAX_ANSWER_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False
