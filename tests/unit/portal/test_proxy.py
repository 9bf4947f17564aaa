"""Proxy mode's hop to a target, with a fake HTTP agent and clock: what is
sent, and what each kind of answer (or none) becomes."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from synapse.module_api.errors import Codes, SynapseError
from twisted.internet import defer, error
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock

from synapse_login_redirect.config.portal import Target
from synapse_login_redirect.gateway.limits import MAX_LOGIN_BODY
from synapse_login_redirect.portal.proxy import (
    HEALTH_CHECK_USER_AGENT,
    MAX_ANSWER,
    MAX_ANSWER_DEPTH,
    LoginProxy,
    TargetError,
)
from tests.support.fakes import Answer, FakeAgent, finished, result_of

TARGET = Target(
    "hist",
    "https://matrix.hist.example",
    mode="proxy",
    public_name="History",
    proxy_url="http://10.0.0.12:8009",
)
TIMEOUT = 10.0
LOGIN = b'{"type": "m.login.password", "user": "ivy", "password": "pw"}'


def _proxy(agent: FakeAgent, clock: Clock | None = None) -> LoginProxy:
    return LoginProxy(TIMEOUT, agent, cast(IReactorTime, clock or Clock()))


def _post(proxy: LoginProxy, body: bytes = LOGIN) -> tuple[int, dict[str, Any]]:
    return result_of(
        proxy.post_login(TARGET, "r0", body, "203.0.113.9", b"Element/1.0")
    )


def _refusal(agent: FakeAgent) -> TargetError:
    with pytest.raises(TargetError) as info:
        _post(_proxy(agent))
    return info.value


def test_a_login_is_posted_once_as_the_client_sent_it() -> None:
    agent = FakeAgent(Answer(200, b'{"user_id": "@ivy:hist.example"}'))
    assert _post(_proxy(agent)) == (200, {"user_id": "@ivy:hist.example"})
    [sent] = agent.sent
    assert (sent.method, sent.uri) == (
        b"POST",
        "http://10.0.0.12:8009/_matrix/client/r0/login",
    )
    assert sent.body == LOGIN
    assert sent.headers.getRawHeaders(b"X-Forwarded-For") == [b"203.0.113.9"]
    assert sent.headers.getRawHeaders(b"User-Agent") == [b"Element/1.0"]
    assert sent.headers.getRawHeaders(b"Content-Type") == [b"application/json"]


def test_an_error_in_matrix_json_is_relayed() -> None:
    answer = {"errcode": "M_FORBIDDEN", "error": "Invalid password"}
    agent = FakeAgent(Answer(403, json.dumps(answer).encode(), chunk=7))
    assert _post(_proxy(agent)) == (403, answer)


def test_a_login_over_the_cap_is_refused_before_anything_is_sent() -> None:
    agent = FakeAgent(Answer())
    with pytest.raises(SynapseError) as info:
        _post(_proxy(agent), b" " * (MAX_LOGIN_BODY + 1))
    assert (info.value.code, info.value.errcode) == (413, Codes.TOO_LARGE)
    assert agent.sent == []


def test_an_answer_too_large_is_a_502_and_not_unreachable() -> None:
    body = b'{"a": "' + b"x" * MAX_ANSWER + b'"}'
    refusal = _refusal(FakeAgent(Answer(200, body, chunk=4096)))
    assert (refusal.code, refusal.errcode) == (502, Codes.UNKNOWN)
    assert "too much data" in refusal.msg and "History" in refusal.msg
    assert refusal.detail == f"answered with more than {MAX_ANSWER} bytes"
    assert not refusal.unreachable


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe{}",
        b"<html>Bad gateway</html>",
        b'{"a": NaN}',
        b'{"a": 1e999}',
        b"[]",
        b'{"a": ' + b"[" * MAX_ANSWER_DEPTH + b"]" * MAX_ANSWER_DEPTH + b"}",
    ],
)
def test_an_answer_synapse_cannot_send_on_is_a_502(body: bytes) -> None:
    refusal = _refusal(FakeAgent(Answer(200, body)))
    assert refusal.code == 502
    assert "answered with invalid JSON" in refusal.msg
    assert refusal.detail == (
        f"answered 200 with {len(body)} bytes that are not a JSON object to send on"
    )
    assert not refusal.unreachable


def test_an_error_that_is_not_matrix_json_is_a_502() -> None:
    refusal = _refusal(FakeAgent(Answer(503, b"Service Unavailable")))
    assert refusal.code == 502
    assert "an error that is not Matrix JSON" in refusal.msg


def test_an_answer_nested_to_the_limit_is_relayed() -> None:
    depth = MAX_ANSWER_DEPTH - 1
    body = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    assert _post(_proxy(FakeAgent(Answer(200, body))))[0] == 200


def test_an_answer_broken_off_is_a_502_and_not_unreachable() -> None:
    refusal = _refusal(FakeAgent(Answer(200, b'{"user_id": ', broken=True)))
    assert refusal.code == 502
    assert "broke off its answer" in refusal.msg
    assert not refusal.unreachable


@pytest.mark.parametrize(
    "failure",
    [error.ConnectionRefusedError(), error.DNSLookupError("hist.internal")],
)
def test_a_target_that_cannot_be_reached_is_a_502_and_unreachable(
    failure: Exception,
) -> None:
    refusal = _refusal(FakeAgent(failure))
    assert refusal.code == 502
    assert "cannot be reached" in refusal.msg
    assert refusal.unreachable


def test_no_answer_in_time_is_a_504_and_the_request_is_dropped() -> None:
    agent, clock = FakeAgent(None), Clock()
    login = defer.ensureDeferred(
        _proxy(agent, clock).post_login(TARGET, "v3", LOGIN, "203.0.113.9", None)
    )
    clock.advance(TIMEOUT - 0.1)
    assert not login.called
    clock.advance(0.1)
    with pytest.raises(TargetError) as info:
        finished(login)
    assert info.value.code == 504
    assert info.value.detail == "no answer within 10 s"
    assert info.value.unreachable
    assert agent.sent[0].cancelled
    assert agent.sent[0].headers.getRawHeaders(b"User-Agent") is None


def test_a_health_check_asks_for_the_versions_and_wants_a_200() -> None:
    agent = FakeAgent(Answer(200, b'{"versions": ["v1.11"]}'))
    proxy = _proxy(agent)
    result_of(proxy.check(TARGET))
    [sent] = agent.sent
    assert (sent.method, sent.uri, sent.body) == (
        b"GET",
        "http://10.0.0.12:8009/_matrix/client/versions",
        None,
    )
    assert sent.headers.getRawHeaders(b"User-Agent") == [HEALTH_CHECK_USER_AGENT]
    agent.answer = Answer(404, b"")
    with pytest.raises(TargetError) as info:
        result_of(proxy.check(TARGET))
    assert info.value.detail == "answered /_matrix/client/versions with 404"
    assert not info.value.unreachable
