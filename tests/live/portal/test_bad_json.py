"""Bad JSON in a login is a client error, as on vanilla Synapse (issue 11, item 6).

Whatever a login body holds, a target and both portals answer below 500, a
body Synapse's own parser refuses gets Synapse's own error (400 ``M_NOT_JSON``
or ``M_BAD_JSON``, same message), and no refused body is sent on to a target.
The expected answer comes from Synapse's ``parse_json_object_from_request``,
run in the test on the same bytes.
"""

from __future__ import annotations

import gc
import http.client
import io
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import attr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synapse.api.errors import SynapseError
from synapse.module_api import parse_json_object_from_request

from deploy.homeserver import Homeserver
from tests.support.portal_deployment import PortalDeployment

pytestmark = pytest.mark.live

SERVERS = ("eng", "portal", "portal_proxy")
LOGIN = "/_matrix/client/v3/login"
# Generated bodies, shared out among the servers.
FUZZ_EXAMPLES = 10_000
# The User-Agent of requests whose body Synapse refuses: the portal passes the
# client's User-Agent on, and Synapse's access log records it, so a target's
# log shows whether such a body ever reached it.
REFUSED_AGENT = "fuzz-refused-body"
AGENT = "fuzz-body"
# What the tests send straight to a target instead.
DIRECT_AGENT = "fuzz-body-direct"
DEEP = 5000


Verdict = tuple[int, str, str]  # status, errcode, error
PYTHON_RECURSION_LIMIT = 1000  # the default, which Synapse keeps


def synapse_verdict(raw: bytes) -> Verdict | None:
    """Synapse's own answer to ``raw`` as a JSON body; None if it parses."""

    class Request:
        content = io.BytesIO(raw)
        method = b"POST"
        uri = LOGIN.encode()

    # Python's recursion limit, as in Synapse (hypothesis raises it), and no
    # garbage collection while the parser recurses near it: a collector
    # callback run there (hypothesis has one) would abort Python.
    limit = sys.getrecursionlimit()
    collecting = gc.isenabled()
    sys.setrecursionlimit(PYTHON_RECURSION_LIMIT)
    gc.disable()
    try:
        parse_json_object_from_request(Request())  # type: ignore[arg-type]
    except SynapseError as e:
        return e.code, e.errcode, e.msg
    finally:
        sys.setrecursionlimit(limit)
        if collecting:
            gc.enable()
    return None


# Synapse's parser logs each body it refuses: not here, ten thousand times.
logging.getLogger("synapse.http.servlet").setLevel(logging.ERROR)


class Client:
    """One keep-alive HTTP connection to a homeserver."""

    def __init__(self, hs: Homeserver) -> None:
        parts = urlsplit(hs.base_url)
        self._host = parts.hostname or ""
        self._port = parts.port
        self._connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=30)

    def post_login(self, raw: bytes, agent: str) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "User-Agent": agent}
        for attempt in (1, 2):
            try:
                self._connection.request("POST", LOGIN, raw, headers)
                response = self._connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                # The server closed an idle keep-alive connection: once more.
                self._connection.close()
                self._connection = self._connect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._connection.close()


@pytest.fixture
def clients(portals: PortalDeployment) -> Iterator[dict[str, Client]]:
    opened = {name: Client(getattr(portals, name)) for name in SERVERS}
    yield opened
    for client in opened.values():
        client.close()


def check_answer(
    verdict: Verdict | None, status: int, body: bytes, *, must_refuse: bool = False
) -> None:
    """No 5xx, a Matrix error for every 4xx, and Synapse's own error
    (``verdict``) for a body its parser refuses."""
    assert status < 500, (status, body[:300])
    if status >= 400:
        errcode = json.loads(body)["errcode"]
        assert errcode.startswith("M_"), body
    if verdict is not None:
        answer = json.loads(body)
        assert (status, answer["errcode"], answer["error"]) == verdict
    elif must_refuse:
        assert 400 <= status < 500, (status, body[:300])


def agent(server: str, *, refused: bool) -> str:
    if server in ("eng", "hist"):
        return DIRECT_AGENT
    return REFUSED_AGENT if refused else AGENT


def target_logins_from_agent(portals: PortalDeployment, agent: str) -> int:
    needle = f'"POST {LOGIN} HTTP/1.1" "{agent}"'.encode()
    return sum(
        hs.log_path.read_bytes().count(needle) for hs in portals.targets.values()
    )


PASSWORD_LOGIN = b'"type":"m.login.password","password":"x","user":"@fuzz:eng.test"'
HAND_PICKED = {
    "deep_array": b"[" * DEEP,
    "deep_object_in_login": b"{" + PASSWORD_LOGIN + b',"x":' + b'{"a":' * DEEP + b"}",
    "deep_valid_array": b"[" * DEEP + b"]" * DEEP,
    "invalid_utf8": b'{"type":"m.login.password","user":"@fuzz:eng.test","password":"\xff"}',
    "utf8_surrogate_bytes": b"{" + PASSWORD_LOGIN + b',"x":"\xed\xa0\x80"}',
    "utf8_bom": b"\xef\xbb\xbf{" + PASSWORD_LOGIN + b"}",
    "utf16": ("{" + PASSWORD_LOGIN.decode() + "}").encode("utf-16"),
    "nan": b"{" + PASSWORD_LOGIN + b',"x":NaN}',
    "infinity": b"{" + PASSWORD_LOGIN + b',"x":-Infinity}',
    "huge_integer": b"{" + PASSWORD_LOGIN + b',"x":1' + b"0" * 5000 + b"}",
    "truncated": b"{" + PASSWORD_LOGIN,
    "empty": b"",
    "array": b'[{"type":"m.login.password"}]',
    "string": b'"m.login.password"',
    "null": b"null",
    "overflowing_float": b"1e999",
}


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("name", HAND_PICKED)
def test_bad_json_gets_synapses_own_error(
    portals: PortalDeployment, clients: dict[str, Client], server: str, name: str
) -> None:
    raw = HAND_PICKED[name]
    verdict = synapse_verdict(raw)
    assert verdict is not None
    before = target_logins_from_agent(portals, REFUSED_AGENT)
    status, body = clients[server].post_login(raw, agent(server, refused=True))
    check_answer(verdict, status, body)
    assert target_logins_from_agent(portals, REFUSED_AGENT) == before


# --- The fuzz: login bodies built from hostile pieces -----------------------


@attr.s(frozen=True, auto_attribs=True)
class Raw:
    """JSON text spliced in as it is (possibly not JSON at all)."""

    text: bytes


@attr.s(frozen=True, auto_attribs=True)
class Pairs:
    """A JSON object written key by key, so keys may repeat."""

    items: tuple[tuple[str, Any], ...]


def encode(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        members = (encode(k) + b":" + encode(v) for k, v in value.items)
        return b"{" + b",".join(members) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(encode(v) for v in value) + b"]"
    if isinstance(value, dict):
        return encode(Pairs(tuple(value.items())))
    return json.dumps(value).encode()


# Nesting that every Python parses, and nesting beyond any recursion limit
# (near the limit, whether a parse succeeds depends on the caller's stack).
NESTED = 500
TOO_DEEP = 1500
HOSTILE = [
    Raw(b"NaN"),
    Raw(b"Infinity"),
    Raw(b"-Infinity"),
    Raw(b"1e999"),
    Raw(b"-1e999"),
    Raw(b"1" * 4400),  # beyond Python's int digit limit: Synapse refuses it
    Raw(b"1" * 4000),
    Raw(b"0." + b"1" * 4400),
    Raw(b"[" * NESTED + b"]" * NESTED),
    Raw(b'{"a":' * NESTED + b"1" + b"}" * NESTED),
    Raw(b"[" * TOO_DEEP + b"]" * TOO_DEEP),
    Raw(b'{"a":' * TOO_DEEP + b"1" + b"}" * TOO_DEEP),
    Raw(b"[" * TOO_DEEP),
    Raw(b'"\xff\xfe"'),
    Raw(b'"\xed\xa0\x80"'),  # a surrogate, as UTF-8 bytes
    Raw(b'"\xc3"'),
    Raw(b'"\\ud800"'),
    Raw(b'"\\udfff\\ud800"'),
    Raw(b'"\x00"'),
    Raw(b'"\\u0000"'),
    Raw(b"tru"),
    Raw(b"'single'"),
    Raw(b""),
]
WRONG_TYPES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    2**64,
    -(10**300),
    1e308,
    "",
    [],
    ["x"],
    [[[]]],
    {},
    {"type": "m.id.user", "user": "@fuzz:eng.test"},
]
# Anything at all, in one draw.
ANY_VALUE = st.sampled_from([*WRONG_TYPES, *HOSTILE])
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=3,
)
# Password and token logins, which portals route, come up most.
LOGIN_TYPES = st.sampled_from(
    ["m.login.password"] * 4
    + ["m.login.token"] * 2
    + [
        "m.login.application_service",
        "uk.half-shot.msc2778.login.application_service",
        "org.matrix.login.jwt",
        "m.login.sso",
        "m.login.dummy",
        "org.example.unknown",
    ]
)
# Users the rules place (the pool's assignments are other tests' business),
# none who exist on hist, which locks accounts after failed logins.
USERS = [
    "@fuzz:eng.test",
    "@fuzz:hist.test",
    "hist_fuzz",
    "@fuzz:portal.test",
    "@fuzz:portal-proxy.test",
    " @fuzz:eng.test ",
    "@:eng.test",
    "",
]
EMAILS = ["fuzz@eng.example", "fuzz@hist.example", "@"]


def often(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes anything at all."""
    return st.integers(0, 9).flatmap(lambda n: ANY_VALUE if n == 9 else good)


IDENTIFIERS = st.sampled_from(
    ["user", "user", "user", "email", "phone", "any"]
).flatmap(
    lambda kind: {
        "user": st.fixed_dictionaries(
            {"type": often(st.just("m.id.user")), "user": often(st.sampled_from(USERS))}
        ),
        "email": st.fixed_dictionaries(
            {
                "type": often(st.just("m.id.thirdparty")),
                "medium": often(st.sampled_from(["email", "msisdn"])),
                "address": often(st.sampled_from(EMAILS)),
            }
        ),
        "phone": st.fixed_dictionaries(
            {
                "type": often(st.just("m.id.phone")),
                "country": st.just("GB"),
                "phone": often(st.just("07700900001")),
            }
        ),
        "any": ANY_VALUE,
    }[kind]
)
SECRETS = st.sampled_from(["wrong", "", "fuzz_token"]) | st.text(max_size=8)
# A login's fields, each mostly there and mostly plausible.
FIELDS = {
    "identifier": IDENTIFIERS,
    "user": often(st.sampled_from(USERS)),
    "password": often(SECRETS),
    "token": often(SECRETS),
    "device_id": often(st.just("FUZZ")),
    "refresh_token": often(st.booleans()),
    "extra": JSON_VALUES | ANY_VALUE,
}
USUAL = {"identifier", "password", "token"}


@st.composite
def login_objects(draw: st.DrawFn) -> Pairs:
    """A login as key/value pairs, a key sometimes repeated with another value."""
    items = [("type", draw(often(LOGIN_TYPES)))]
    for name, values in FIELDS.items():
        if draw(st.integers(0, 9)) < (8 if name in USUAL else 2):
            items.append((name, draw(values)))
    if draw(st.integers(0, 3)) == 3:
        key = draw(st.sampled_from([k for k, _ in items]))
        items.insert(draw(st.integers(0, len(items))), (key, draw(ANY_VALUE)))
    return Pairs(tuple(items))


MANGLINGS = ["none"] * 18 + ["truncate", "bom", "utf16", "byte", "wrap", "deep"]


@st.composite
def login_bodies(draw: st.DrawFn) -> bytes:
    """Raw body bytes: a (possibly hostile) login, then perhaps mangled."""
    kind = draw(st.integers(0, 9))
    raw = encode(draw(JSON_VALUES if kind == 9 else login_objects()))
    mangle = draw(st.sampled_from(MANGLINGS))
    if mangle == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif mangle == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif mangle == "utf16":
        raw = raw.decode("utf-8", errors="replace").encode("utf-16")
    elif mangle == "byte":
        position = draw(st.integers(0, len(raw)))
        raw = raw[:position] + bytes([draw(st.integers(0x80, 0xFF))]) + raw[position:]
    elif mangle == "wrap":
        raw = b"[" + raw + b"]"
    elif mangle == "deep":
        raw = b"[" * TOO_DEEP + raw + b"]" * TOO_DEEP
    return raw


def refused_by_synapse(raw: bytes, verdict: Verdict | None) -> bool:
    """Bodies Synapse refuses whatever the server: bad JSON (``verdict``), or
    a password or token login whose secret is not text."""
    if verdict is not None:
        return True
    login = json.loads(raw)
    secret = {"m.login.password": "password", "m.login.token": "token"}
    kind = login.get("type")
    name = secret.get(kind) if isinstance(kind, str) else None
    return name is not None and not is_text(login.get(name))


def is_text(value: Any) -> bool:
    """A JSON string Synapse can store: no NUL, no unpaired surrogate."""
    if not isinstance(value, str) or "\0" in value:
        return False
    return value.encode("utf-8", "replace") == value.encode("utf-8", "surrogatepass")


def describe(raw: bytes) -> str:
    return f"{len(raw)} bytes: {raw[:150]!r}...{raw[-50:]!r}"


def test_fuzzed_login_bodies_get_client_errors(
    portals: PortalDeployment, clients: dict[str, Client]
) -> None:
    """FUZZ_EXAMPLES bodies, shared out among the target and both portals:
    never a 5xx, Synapse's own error for bad JSON, a 4xx for every body
    Synapse refuses, and none of those sent on (no 307, nothing proxied).

    Bodies go out from one thread per server while the next ones are
    generated, so the run takes about as long as generating them; a failure
    is reported with its body, unshrunk.
    """
    before = target_logins_from_agent(portals, REFUSED_AGENT)
    forwarded = target_logins_from_agent(portals, AGENT)
    senders = {name: ThreadPoolExecutor(max_workers=1) for name in SERVERS}
    sent: list[tuple[bytes, Future[int]]] = []

    def post(server: str, raw: bytes, verdict: Verdict | None, refused: bool) -> int:
        status, body = clients[server].post_login(raw, agent(server, refused=refused))
        check_answer(verdict, status, body, must_refuse=refused)
        if refused:
            assert status != 307
        return status

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(login_bodies())
    def one_body(raw: bytes) -> None:
        server = SERVERS[len(sent) % len(SERVERS)]
        verdict = synapse_verdict(raw)
        refused = refused_by_synapse(raw, verdict)
        sent.append((raw, senders[server].submit(post, server, raw, verdict, refused)))

    # Lets the sending threads in while the main thread generates bodies.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    try:
        one_body()
    finally:
        sys.setswitchinterval(switch_interval)
        for executor in senders.values():
            executor.shutdown()
    assert len(sent) >= FUZZ_EXAMPLES
    failures = [f"{describe(raw)}: {f.exception()}" for raw, f in sent if f.exception()]
    assert not failures, f"{len(failures)} failed:\n" + "\n".join(failures[:5])
    assert target_logins_from_agent(portals, REFUSED_AGENT) == before
    # Not a degenerate run: few logins throttled (hist locks its fuzz users
    # after failed logins), and many routed on.
    statuses = Counter(f.result() for _, f in sent)
    assert statuses[429] < FUZZ_EXAMPLES // 50
    assert statuses[307] > FUZZ_EXAMPLES // 100
    assert target_logins_from_agent(portals, AGENT) - forwarded > FUZZ_EXAMPLES // 100
