"""Proxy mode trusts nothing from the network (issue 11, item 5).

A proxying portal whose one pool target is a fake, misbehaving homeserver
(``FakeTarget``) that answers each login as its user asks: 64 MiB, deep
nesting, invalid JSON, a reverse proxy's 502, ... The portal answers 502
``M_UNKNOWN`` naming the target, does not buffer the answer, logs no body, and
keeps the target in its pool: the next new user still goes to it. A login body
over the portal's cap is refused before anything is sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from deploy.homeserver import (
    Homeserver,
    HttpResponse,
    http,
    running,
)
from tests.support.fake_target import FakeTarget

pytestmark = pytest.mark.live

LOGIN = "/_matrix/client/v3/login"
MARKER = b"ROGUE-ANSWER-BYTES"  # in every bad answer: never in a log or relayed
SECRET = "password-4f1c9a"  # the logins' password: never in a log
MIB = 1024 * 1024
PUBLIC_NAME = "Rogue Lab"


def response(
    status: int,
    body: bytes,
    *,
    reason: str = "OK",
    content_type: str = "application/json",
) -> list[bytes]:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return [head.encode(), body]


def huge(*, sized: bool) -> Iterator[bytes]:
    """A 64 MiB JSON object, with or without a Content-Length."""
    chunk = MARKER * (MIB // len(MARKER))
    start, end = b'{"user_id": "', b'"}'
    length = len(start) + 64 * len(chunk) + len(end)
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if sized:
        head += f"Content-Length: {length}\r\n"
    yield head.encode() + b"\r\n" + start
    for _ in range(64):
        yield chunk
    yield end


ANSWERS: dict[str, Callable[[], Iterable[bytes]]] = {
    "huge": lambda: huge(sized=True),
    "huge_unsized": lambda: huge(sized=False),
    # Under 64 KiB, but nested far beyond Python's recursion limit.
    "deep": lambda: response(
        200, b'{"a":' * 10000 + b'"' + MARKER + b'"' + b"}" * 10000
    ),
    "invalid": lambda: response(200, b'{"access_token": "' + MARKER),
    "array": lambda: response(200, b'["' + MARKER + b'"]'),
    "nan": lambda: response(200, b'{"user_id": "' + MARKER + b'", "x": NaN}'),
    "infinite": lambda: response(200, b'{"user_id": "' + MARKER + b'", "x": 1e999}'),
    "not_utf8": lambda: response(200, b'{"user_id": "' + MARKER + b'\xff"}'),
    "bad_gateway": lambda: response(
        502,
        b"<html><body>502 Bad Gateway " + MARKER + b"</body></html>",
        reason="Bad Gateway",
        content_type="text/html",
    ),
}


def rogue_answer(request: bytes) -> Iterable[bytes]:
    """Health checks pass; a login gets the answer its user names, or a
    good login answer."""
    if request.startswith(b"GET /_matrix/client/versions "):
        return response(200, b'{"versions": ["v1.11"]}')
    login = json.loads(request.partition(b"\r\n\r\n")[2])
    user = login["identifier"]["user"]
    if user in ANSWERS:
        return ANSWERS[user]()
    good = {
        "user_id": f"@{user}:rogue.test",
        "access_token": "syt_rogue",
        "device_id": "ROGUE",
    }
    return response(200, json.dumps(good).encode())


@pytest.fixture(scope="module")
def rogue() -> Iterator[FakeTarget]:
    target = FakeTarget(rogue_answer)
    yield target
    target.close()


@pytest.fixture(scope="module")
def rogue_portal(workdir: Path, rogue: FakeTarget) -> Iterator[Homeserver]:
    """A proxying portal with the rogue as its only pool target; health checks
    are rare, so a target marked unhealthy stays so for the whole module."""
    hs = Homeserver(
        "portal-rogue",
        workdir,
        module_config={
            "targets": {
                "rogue": {
                    "base_url": rogue.base_url,
                    "mode": "proxy",
                    "public_name": PUBLIC_NAME,
                }
            },
            "portal": {
                "pool": {"rogue": 1},
                "proxy_timeout": 10,
                "health_check_interval": 600,
            },
        },
    )
    with running([hs]):
        yield hs


def login(portal: Homeserver, user: str, **extra: str) -> HttpResponse:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": SECRET,
        **extra,
    }
    return http("POST", portal.url(LOGIN), body)


def memory_kib(hs: Homeserver, field: str) -> int:
    assert hs.process is not None
    status = Path(f"/proc/{hs.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith(field + ":"))
    return int(line.split()[1])


def reset_peak_memory(hs: Homeserver) -> None:
    """Start VmHWM (peak resident memory) afresh at the current VmRSS."""
    assert hs.process is not None
    Path(f"/proc/{hs.process.pid}/clear_refs").write_text("5")


@pytest.mark.parametrize("kind", ANSWERS)
def test_bad_answer_gives_502_and_the_target_stays_in_the_pool(
    rogue_portal: Homeserver, rogue: FakeTarget, kind: str
) -> None:
    reset_peak_memory(rogue_portal)
    before = memory_kib(rogue_portal, "VmRSS")
    answer = login(rogue_portal, kind)
    grown_mib = (memory_kib(rogue_portal, "VmHWM") - before) / 1024
    assert (answer.status, answer.json()["errcode"]) == (502, "M_UNKNOWN"), answer
    assert PUBLIC_NAME in answer.json()["error"]
    assert MARKER not in answer.body
    assert grown_mib < 30, f"the portal grew by {grown_mib:.0f} MiB"
    # Not marked unhealthy: a new user is still placed on the rogue.
    fresh = login(rogue_portal, f"fresh_after_{kind}")
    assert fresh.status == 200, fresh
    assert fresh.json()["well_known"]["m.homeserver"]["base_url"] == rogue.base_url
    log = rogue_portal.log_path.read_bytes()
    assert MARKER not in log
    assert SECRET.encode() not in log


def test_login_over_the_cap_gets_413_and_is_not_sent(
    rogue_portal: Homeserver, rogue: FakeTarget
) -> None:
    received = len(rogue.received)
    answer = login(rogue_portal, "big_body", padding="x" * 64 * 1024)
    assert (answer.status, answer.json()["errcode"]) == (413, "M_TOO_LARGE"), answer
    time.sleep(0.5)
    assert len(rogue.received) == received
    assert login(rogue_portal, "small_body", padding="x" * 1024).status == 200
