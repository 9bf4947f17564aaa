"""The portal's password logins end to end through its services, with fakes at
the edges: the tables on sqlite, a fake HTTP agent, clock and rate limiter."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from synapse.module_api.errors import Codes, SynapseError
from twisted.internet import error
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock as ReactorClock

from synapse_login_redirect.config.module import parse_config
from synapse_login_redirect.portal.health import TargetHealth
from synapse_login_redirect.portal.logins import Portal
from synapse_login_redirect.portal.placement import Placement
from synapse_login_redirect.portal.proxy import LoginProxy, TargetError
from synapse_login_redirect.routing.engine import SELF
from synapse_login_redirect.store.assignments import AssignmentTable
from synapse_login_redirect.store.target_health import TargetHealthTable
from synapse_login_redirect.target.well_known import LoginAnswer
from tests.support.fakes import (
    Answer,
    Clock,
    FakeAgent,
    FakeRequest,
    result_of,
    sqlite_tables,
)

TARGETS = {
    "eng": {"base_url": "https://matrix.eng.example"},
    "hist": {
        "base_url": "https://matrix.hist.example",
        "proxy_url": "http://10.0.0.12:8009",
        "mode": "proxy",
    },
    "lab": {"base_url": "https://matrix.lab.example", "mode": "proxy"},
}
ENG_RULE = {"server_name": "eng.example", "target": "eng"}
UNPLACED = "Log in at your own homeserver."


class RateLimit(Exception):
    pass


class PortalUnderTest:
    """A portal with the given ``portal`` config over fakes."""

    def __init__(self, portal: dict[str, Any]) -> None:
        config = parse_config({"targets": TARGETS, "portal": portal})
        assert config.portal is not None
        tables = sqlite_tables(Clock())
        self.assignments = AssignmentTable(tables)
        self.agent = FakeAgent(Answer(200, b'{"user_id": "@carol:hist.example"}'))
        proxy = LoginProxy(
            config.portal.proxy_timeout,
            self.agent,
            cast(IReactorTime, ReactorClock()),
        )
        pooled = [n for n in config.portal.engine.pool.weights if n != SELF]
        self.health = TargetHealth(
            [config.targets[n] for n in pooled],
            config.portal.health_check_interval,
            config.portal.proxy_timeout,
            proxy.check,
            table=TargetHealthTable(tables),
            clock=Clock(),
            repeat=None,
        )
        self.counted: list[str] = []
        self.over_limit = False
        self.portal = Portal(
            config.portal,
            config.targets,
            base_cs_url=False,
            placement=Placement(config.portal.engine, self.assignments, self.health),
            proxy=proxy,
            health=self.health,
            limit_address=self._limit,
            sso=None,
        )

    async def _limit(self, address: str, *, update: bool = True) -> None:
        self.counted.append(address)
        if self.over_limit:
            raise RateLimit

    def login(
        self, user: str, version: bytes = b"v3", **body: Any
    ) -> tuple[LoginAnswer | None, FakeRequest]:
        login = {"type": "m.login.password", "user": user, "password": "pw", **body}
        request = FakeRequest(
            b"/_matrix/client/" + version + b"/login",
            body=json.dumps(login).encode(),
            user_agent=b"Element/1.0",
        )
        return result_of(self.portal.intercept(request.as_synapse())), request

    def assignment(self, user_key: str) -> str | None:
        return result_of(self.assignments.get(user_key))


def test_a_rule_sends_the_client_to_its_target_in_the_version_it_used() -> None:
    portal = PortalUnderTest({"rules": [ENG_RULE], "unplaced_message": UNPLACED})
    answer, request = portal.login("@ivy:eng.example", b"r0")
    assert answer == (307, {})
    assert request.responseHeaders.getRawHeaders(b"Location") == [
        b"https://matrix.eng.example/_matrix/client/r0/login"
    ]
    assert portal.agent.sent == []
    assert portal.assignment("ivy") is None  # rules store nothing
    assert portal.counted == ["10.0.0.1"]


def test_a_new_pool_user_sent_on_by_redirect_is_placed_at_once() -> None:
    portal = PortalUnderTest({"pool": {"eng": 1}})
    answer, _ = portal.login("carol")
    assert answer == (307, {})
    assert portal.assignment("carol") == "eng"


def test_a_proxied_login_relays_the_answer_with_the_targets_well_known() -> None:
    portal = PortalUnderTest({"pool": {"hist": 1}})
    answer, _ = portal.login("carol")
    assert answer == (
        200,
        {
            "user_id": "@carol:hist.example",
            "well_known": {"m.homeserver": {"base_url": "https://matrix.hist.example"}},
        },
    )
    [sent] = portal.agent.sent
    assert sent.uri == "http://10.0.0.12:8009/_matrix/client/v3/login"
    assert json.loads(sent.body or b"")["user"] == "carol"
    assert sent.headers.getRawHeaders(b"User-Agent") == [b"Element/1.0"]
    assert portal.assignment("carol") == "hist"


def test_a_proxied_login_that_fails_places_nobody() -> None:
    portal = PortalUnderTest({"pool": {"hist": 1}})
    forbidden = {"errcode": "M_FORBIDDEN", "error": "Invalid password"}
    portal.agent.answer = Answer(403, json.dumps(forbidden).encode())
    answer, _ = portal.login("carol")
    assert answer == (403, forbidden)
    assert portal.assignment("carol") is None


def test_an_unreachable_target_is_avoided_by_the_next_new_users() -> None:
    portal = PortalUnderTest({"pool": {"hist": 1, "lab": 1}})
    result_of(portal.assignments.claim("carol", "hist", None))
    portal.agent.answer = error.ConnectionRefusedError()
    with pytest.raises(TargetError) as info:
        portal.login("carol")
    assert (info.value.code, info.value.unreachable) == (502, True)
    assert result_of(portal.health.unhealthy()) == {"hist"}
    portal.agent.answer = Answer(200, b'{"user_id": "@dan:lab.example"}')
    for user in ("dan", "erin", "frank", "grace"):
        portal.login(user)
        assert portal.assignment(user) == "lab"
    assert {s.uri for s in portal.agent.sent[1:]} == {
        "https://matrix.lab.example/_matrix/client/v3/login"
    }


def test_a_login_no_rule_or_pool_places_is_refused() -> None:
    portal = PortalUnderTest({"rules": [ENG_RULE], "unplaced_message": UNPLACED})
    with pytest.raises(SynapseError) as info:
        portal.login("@ivy:elsewhere.example")
    assert (info.value.code, info.value.errcode) == (403, Codes.FORBIDDEN)
    assert info.value.msg == UNPLACED


def test_logins_over_the_rate_limit_go_nowhere() -> None:
    portal = PortalUnderTest({"pool": {"hist": 1}})
    portal.over_limit = True
    with pytest.raises(RateLimit):
        portal.login("carol")
    assert portal.agent.sent == []
    assert portal.assignment("carol") is None


@pytest.mark.parametrize(
    "body",
    [
        {"type": "m.login.token", "token": "abc"},  # no SSO through this portal
        {"type": "m.login.dummy", "user": "carol", "password": "pw"},
        {"type": "m.login.password", "user": "carol"},
        {"type": "m.login.password", "password": "pw"},
    ],
)
def test_other_logins_are_left_to_synapse_uncounted(body: dict[str, Any]) -> None:
    portal = PortalUnderTest({"pool": {"hist": 1}})
    request = FakeRequest(body=json.dumps(body).encode())
    assert result_of(portal.portal.intercept(request.as_synapse())) is None
    assert portal.counted == []
    assert portal.agent.sent == []


def test_a_login_the_pool_places_here_is_left_to_synapse() -> None:
    portal = PortalUnderTest({"pool": {"self": 1}})
    answer, _ = portal.login("carol")
    assert answer is None
    assert portal.assignment("carol") == SELF
