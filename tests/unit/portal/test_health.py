"""Target health shared through the database, with a fake clock and checks:
one process checks, every process reads, and stale records are ignored."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest

from synapse_login_redirect.config.portal import Target
from synapse_login_redirect.portal.health import (
    MAX_READ_AGE_MS,
    STALE_INTERVALS,
    Repeat,
    TargetHealth,
)
from synapse_login_redirect.portal.proxy import TargetError
from synapse_login_redirect.store.target_health import TargetHealthTable
from tests.support.fakes import Clock, result_of, sqlite_tables

ENG = Target("eng", "https://matrix.eng.example")
HIST = Target("hist", "https://matrix.hist.example")
INTERVAL_MS = 30_000
TIMEOUT_MS = 10_000


class Checks:
    """The targets' health checks: those in ``failing`` fail; the process
    that runs them is given ``repeat``."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.scheduled: list[tuple[Callable[[], Awaitable[None]], int]] = []

    async def check(self, target: Target) -> None:
        if target.name in self.failing:
            raise TargetError(502, target, "failed", "answered 503")

    def repeat(
        self, check_all: Callable[[], Awaitable[None]], interval_ms: int
    ) -> None:
        self.scheduled.append((check_all, interval_ms))

    def run(self) -> None:
        for check_all, _ in self.scheduled:
            result_of(check_all())


class Deployment:
    """Portal processes sharing one database and one clock."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.table = TargetHealthTable(sqlite_tables(self.clock))
        self.checks = Checks()

    def process(
        self, *, checker: bool = False, interval_ms: int = INTERVAL_MS
    ) -> TargetHealth:
        repeat: Repeat | None = self.checks.repeat if checker else None
        return TargetHealth(
            [ENG, HIST],
            interval_ms / 1000,
            TIMEOUT_MS / 1000,
            self.checks.check,
            table=self.table,
            clock=self.clock,
            repeat=repeat,
        )


def _unhealthy(health: TargetHealth) -> frozenset[str]:
    return result_of(health.unhealthy())


def test_only_the_checking_process_schedules_checks() -> None:
    deployment = Deployment()
    deployment.process()
    assert deployment.checks.scheduled == []
    deployment.process(checker=True)
    assert [ms for _, ms in deployment.checks.scheduled] == [INTERVAL_MS]


def test_without_an_interval_nothing_is_checked_or_marked() -> None:
    deployment = Deployment()
    health = deployment.process(checker=True, interval_ms=0)
    assert deployment.checks.scheduled == []
    result_of(health.mark_unhealthy(HIST, "no answer"))
    assert _unhealthy(health) == frozenset()


def test_every_process_sees_the_checks_of_the_one_that_runs_them() -> None:
    deployment = Deployment()
    deployment.process(checker=True)
    reader = deployment.process()
    deployment.checks.failing = {"hist"}
    deployment.checks.run()
    assert _unhealthy(reader) == {"hist"}
    assert result_of(reader.is_failing("hist"))
    assert not result_of(reader.is_failing("eng"))
    deployment.checks.failing = set()
    deployment.checks.run()
    deployment.clock.now += MAX_READ_AGE_MS
    assert _unhealthy(reader) == frozenset()


def test_a_process_reads_the_records_at_most_once_a_second() -> None:
    deployment = Deployment()
    deployment.process(checker=True)
    reader = deployment.process()
    assert _unhealthy(reader) == frozenset()
    deployment.checks.failing = {"eng"}
    deployment.checks.run()
    deployment.clock.now += MAX_READ_AGE_MS - 1
    assert _unhealthy(reader) == frozenset()
    deployment.clock.now += 1
    assert _unhealthy(reader) == {"eng"}


def test_a_record_no_check_refreshed_is_ignored() -> None:
    deployment = Deployment()
    deployment.process(checker=True)
    reader = deployment.process()
    deployment.checks.failing = {"hist"}
    deployment.checks.run()
    deployment.clock.now += STALE_INTERVALS * INTERVAL_MS + TIMEOUT_MS
    assert _unhealthy(reader) == {"hist"}
    deployment.clock.now += MAX_READ_AGE_MS  # the checker stopped: no record since
    assert _unhealthy(reader) == frozenset()


def test_an_unreachable_target_is_marked_until_its_next_good_check() -> None:
    deployment = Deployment()
    deployment.process(checker=True)
    proxying = deployment.process()
    reader = deployment.process()
    result_of(proxying.mark_unhealthy(HIST, "no answer within 10 s"))
    assert _unhealthy(proxying) == {"hist"}  # at once where it was seen
    assert _unhealthy(reader) == {"hist"}
    deployment.checks.run()
    deployment.clock.now += MAX_READ_AGE_MS
    assert _unhealthy(reader) == frozenset()


def test_targets_outside_the_pool_are_neither_marked_nor_read() -> None:
    deployment = Deployment()
    health = deployment.process()
    result_of(health.mark_unhealthy(Target("other", "https://other.example"), "x"))
    assert result_of(deployment.table.failing(0)) == []
    # A record of a target since removed from the config:
    result_of(deployment.table.record("retired", False, deployment.clock.now))
    assert _unhealthy(health) == frozenset()


def test_a_failure_is_logged_when_it_changes_what_was_known(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployment = Deployment()
    deployment.process(checker=True)
    deployment.checks.failing = {"hist"}
    with caplog.at_level(logging.INFO):
        deployment.checks.run()
        deployment.checks.run()
        deployment.checks.failing = set()
        deployment.checks.run()
    assert [r.getMessage() for r in caplog.records] == [
        "Target hist is failing (health check: answered 503); new users go elsewhere",
        "Target hist is healthy again",
    ]
