"""Health checks of the portal's pool targets, so new users avoid a failing one.

Each target is checked every interval, on every worker (see
``LoginProxy.check``). A proxied login that finds its target unreachable (no
connection, or no answer in time) marks it unhealthy at once; an answer never
does, whatever it holds, since one client's login can provoke it. The next
good check clears the mark.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection

from synapse.module_api import ModuleApi, make_deferred_yieldable, run_in_background
from twisted.internet import defer

from synapse_login_redirect.config import Target
from synapse_login_redirect.login_proxy import TargetError

logger = logging.getLogger(__name__)


class TargetHealth:
    """The names of the targets that failed their last check."""

    def __init__(
        self,
        api: ModuleApi,
        targets: Collection[Target],
        interval_seconds: float,
        check: Callable[[Target], Awaitable[None]],
    ) -> None:
        """``check`` raises when a target fails its health check."""
        self._targets = tuple(targets)
        self._check_target = check
        self.unhealthy: set[str] = set()
        # Without checks nothing would ever clear a mark, so nothing is marked.
        self._checking = interval_seconds > 0 and bool(self._targets)
        if self._checking:
            api.looping_background_call(
                self._check_all,
                interval_seconds * 1000,
                desc="login_redirect_health_checks",
                run_on_all_instances=True,
            )

    def mark_unhealthy(self, target: Target, why: str) -> None:
        """Keep new users off a checked target until its next good check."""
        if not self._checking or target not in self._targets:
            return
        if target.name not in self.unhealthy:
            logger.warning(
                "Target %s is failing (%s); new users go elsewhere", target.name, why
            )
            self.unhealthy.add(target.name)

    async def _check_all(self) -> None:
        checks = [run_in_background(self._check, t) for t in self._targets]
        await make_deferred_yieldable(defer.gatherResults(checks, consumeErrors=True))

    async def _check(self, target: Target) -> None:
        try:
            await self._check_target(target)
        except TargetError as e:
            self.mark_unhealthy(target, f"health check: {e.detail}")
            return
        if target.name in self.unhealthy:
            logger.info("Target %s is healthy again", target.name)
            self.unhealthy.discard(target.name)
