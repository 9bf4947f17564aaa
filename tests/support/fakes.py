"""Fakes for the portal's services in unit tests: a clock the test moves, the
module's tables on sqlite in memory, an HTTP agent whose answers the test
sets, a browser request, and pages that are recorded instead of rendered."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import attr
from synapse.module_api import ModuleApi
from twisted.internet import defer, error
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse

from synapse_login_redirect._synapse import SynapseRequest
from synapse_login_redirect.store.tables import ModuleTables
from synapse_login_redirect.web.pages import Pages
from tests.support.sqlite_txn import SqliteTxn

T = TypeVar("T")


def result_of(awaitable: Awaitable[T]) -> T:
    """What ``awaitable`` gives or raises, when it is done without a reactor
    (every fake answers at once)."""

    async def wait() -> T:
        return await awaitable

    return finished(defer.ensureDeferred(wait()))


def finished(deferred: defer.Deferred[T]) -> T:
    """The result of a Deferred that has fired."""
    outcome: list[T | Failure] = []
    deferred.addBoth(outcome.append)
    assert outcome, "still waiting"
    first = outcome[0]
    if isinstance(first, Failure):
        first.raiseException()
    return first


class Clock:
    """Milliseconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


class SqliteApi:
    """What the module's tables use of the ModuleApi, on sqlite in memory."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self._db = sqlite3.connect(":memory:")

    @property
    def now(self) -> int:
        return self.clock.now

    @now.setter
    def now(self, value: int) -> None:
        self.clock.now = value

    def get_current_time_msec(self) -> int:
        return self.clock()

    def run_as_background_process(
        self, desc: str, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> defer.Deferred[Any]:
        return defer.ensureDeferred(func(*args, **kwargs))

    async def run_db_interaction(
        self, desc: str, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        try:
            result = func(SqliteTxn(self._db), *args, **kwargs)
        except BaseException:
            self._db.rollback()
            raise
        self._db.commit()
        return result

    def as_module_api(self) -> ModuleApi:
        return cast(ModuleApi, self)


def sqlite_tables(clock: Clock) -> ModuleTables:
    """The module's tables in a database of their own, on ``clock``'s time."""
    return ModuleTables(SqliteApi(clock).as_module_api())


@attr.s(auto_attribs=True)
class Answer:
    """A target's HTTP answer: its status and body, in one piece unless
    ``chunk`` says how many bytes at a time; ``broken`` drops the connection
    before it ends."""

    code: int = 200
    body: bytes = b"{}"
    chunk: int = 0
    broken: bool = False


@attr.s(auto_attribs=True)
class SentRequest:
    """What the proxy sent."""

    method: bytes
    uri: str
    headers: Headers
    body: bytes | None
    cancelled: bool = False


class FakeAgent:
    """An HTTP agent that gives ``answer`` to every request: an ``Answer``,
    an exception (the connection failed), or None (no answer, ever)."""

    def __init__(self, answer: Answer | Exception | None) -> None:
        self.answer = answer
        self.sent: list[SentRequest] = []

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None,
        body: IBodyProducer | None,
        /,
    ) -> defer.Deferred[IResponse]:
        sent = SentRequest(method, uri.decode("ascii"), headers or Headers(), None)
        if body is not None:
            written = _Written()
            cast(Any, body).startProducing(written)  # a zope interface
            sent.body = written.data
        self.sent.append(sent)
        if self.answer is None:
            return defer.Deferred(lambda _: setattr(sent, "cancelled", True))
        if isinstance(self.answer, Exception):
            return defer.fail(self.answer)
        return defer.succeed(cast(IResponse, _Response(self.answer)))


class _Written:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


class _Response:
    def __init__(self, answer: Answer) -> None:
        self.code = answer.code
        self._answer = answer

    def deliverBody(self, protocol: Any) -> None:  # noqa: N802
        body = self._answer.body
        step = self._answer.chunk or max(1, len(body))
        for start in range(0, len(body), step):
            protocol.dataReceived(body[start : start + step])
        ending = error.ConnectionLost() if self._answer.broken else ResponseDone()
        protocol.connectionLost(Failure(ending))


class FakeRequest:
    """A browser's or client's request to the portal, and what it was answered.

    ``cookies`` is the browser's cookie jar: cookies the answer sets go there.
    """

    def __init__(
        self,
        path: bytes = b"/_matrix/client/v3/login",
        *,
        body: bytes = b"",
        args: dict[str, str] | None = None,
        cookies: dict[bytes, bytes] | None = None,
        client_ip: str = "10.0.0.1",
        user_agent: bytes | None = None,
    ) -> None:
        self.path = self.uri = path
        self.method = b"POST" if body else b"GET"
        self.content = io.BytesIO(body)
        self.args = {k.encode(): [v.encode()] for k, v in (args or {}).items()}
        self.cookies = {} if cookies is None else cookies
        self.cookie_attributes: dict[str, dict[str, Any]] = {}
        self.requestHeaders = Headers()
        if user_agent is not None:
            self.requestHeaders.setRawHeaders(b"User-Agent", [user_agent])
        self.responseHeaders = Headers()
        self.client_ip = client_ip
        self.redirected_to: str | None = None

    def as_synapse(self) -> SynapseRequest:
        return cast(SynapseRequest, self)

    def get_client_ip_if_available(self) -> str:
        return self.client_ip

    def getHeader(self, name: bytes) -> bytes | None:  # noqa: N802
        values = self.requestHeaders.getRawHeaders(name)
        return None if not values else values[-1]

    def setHeader(self, name: bytes, value: bytes) -> None:  # noqa: N802
        self.responseHeaders.setRawHeaders(name, [value])

    def getCookie(self, name: bytes) -> bytes | None:  # noqa: N802
        return self.cookies.get(name)

    def addCookie(self, name: str, value: str, **attributes: Any) -> None:  # noqa: N802
        self.cookies[name.encode()] = value.encode()
        self.cookie_attributes[name] = attributes

    def redirect(self, url: bytes) -> None:
        self.redirected_to = url.decode("utf-8")

    def finish(self) -> None:
        pass


@attr.s(auto_attribs=True)
class Shown:
    """A page the portal showed: which, its status, and its message (error
    pages) or the client's final URL (confirmation pages)."""

    page: str
    code: int
    text: str = ""


class FakePages(Pages):
    """The portal's pages, recorded in ``shown`` instead of rendered; the
    redirectUrl checks are the real ones."""

    def __init__(self) -> None:  # no templates to read
        self.shown: list[Shown] = []

    def error(
        self, request: SynapseRequest, code: int, title: str, message: str
    ) -> None:
        self.shown.append(Shown("error", code, message))

    def realm(self, request: SynapseRequest, code: int, **fields: Any) -> None:
        self.shown.append(Shown("realm", code, fields.get("error") or ""))

    def confirm(
        self, request: SynapseRequest, client_url: str, final_url: str, account: str
    ) -> None:
        self.shown.append(Shown("confirm", 200, final_url))
