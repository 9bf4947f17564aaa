"""Health of the portal's pool targets, shared by all portal processes, so new
users avoid a failing target.

One process checks: the one that runs Synapse's background tasks (main,
unless ``run_background_tasks_on`` names a worker). It asks each target's
``/_matrix/client/versions`` every interval (see ``LoginProxy.check``) and
records the result in Synapse's database. A proxied login that finds its
target unreachable (no connection, or no answer in time), on any process,
records a failure too; an answer never does, whatever it holds, since one
client's login can provoke it. The next good check clears it. Every process
reads the records at most once a second (or once an interval, if shorter),
so all see the same health within an interval. A record no check refreshed
for ``STALE_INTERVALS`` intervals is ignored, so a failure mark does not
outlive a checker that stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection

from synapse.module_api import make_deferred_yieldable, run_in_background
from twisted.internet import defer

from synapse_login_redirect.config.portal import Target
from synapse_login_redirect.portal.proxy import TargetError
from synapse_login_redirect.store.target_health import TargetHealthTable

logger = logging.getLogger(__name__)

MAX_READ_AGE_MS = 1000
STALE_INTERVALS = 3

# The current time, in ms since the epoch.
Clock = Callable[[], int]
# Calls a function every so many ms, from now on.
Repeat = Callable[[Callable[[], Awaitable[None]], int], None]


class TargetHealth:
    """Which pool targets are failing, as the deployment last recorded."""

    def __init__(
        self,
        targets: Collection[Target],
        interval_seconds: float,
        timeout_seconds: float,
        check: Callable[[Target], Awaitable[None]],
        *,
        table: TargetHealthTable,
        clock: Clock,
        repeat: Repeat | None,
    ) -> None:
        """``check`` raises ``TargetError`` when a target fails its check;
        ``repeat`` runs the checks, given to the one process that does."""
        self._table = table
        self._clock = clock
        self._targets = tuple(targets)
        self._check_target = check
        interval_ms = int(interval_seconds * 1000)
        self._read_age_ms = min(MAX_READ_AGE_MS, interval_ms)
        self._stale_ms = STALE_INTERVALS * interval_ms + int(timeout_seconds * 1000)
        self._failing: frozenset[str] = frozenset()
        self._read_at: int | None = None
        self._reading = False
        # Without checks nothing would ever clear a mark, so nothing is marked.
        self._checking = interval_ms > 0 and bool(self._targets)
        if self._checking and repeat is not None:
            repeat(self._check_all, interval_ms)

    async def unhealthy(self) -> frozenset[str]:
        """The names of the failing targets, read again when a second old."""
        if not self._checking:
            return frozenset()
        now = self._clock()
        stale = self._read_at is None or now - self._read_at >= self._read_age_ms
        if stale and not self._reading:  # others meanwhile use the last answer
            self._reading = True
            try:
                failing = await self._table.failing(now - self._stale_ms)
            finally:
                self._reading = False
            known = {t.name for t in self._targets}
            self._failing = frozenset(failing) & known
            self._read_at = now
        return self._failing

    async def is_failing(self, name: str) -> bool:
        return name in await self.unhealthy()

    async def mark_unhealthy(self, target: Target, why: str) -> None:
        """Keep new users off a checked target until its next good check."""
        if not self._checking or target not in self._targets:
            return
        if target.name in self._failing:
            return
        self._failing |= {target.name}
        await self._record(target, False, why)

    async def _check_all(self) -> None:
        checks = [run_in_background(self._check, t) for t in self._targets]
        await make_deferred_yieldable(defer.gatherResults(checks, consumeErrors=True))

    async def _check(self, target: Target) -> None:
        try:
            await self._check_target(target)
        except TargetError as e:
            await self._record(target, False, f"health check: {e.detail}")
            return
        await self._record(target, True)

    async def _record(self, target: Target, healthy: bool, why: str = "") -> None:
        """Store a result; log it if it changes what the deployment knew."""
        was_healthy = await self._table.record(target.name, healthy, self._clock())
        if not healthy and was_healthy is not False:
            logger.warning(
                "Target %s is failing (%s); new users go elsewhere", target.name, why
            )
        elif healthy and was_healthy is False:
            logger.info("Target %s is healthy again", target.name)
