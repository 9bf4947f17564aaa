"""Where the portal places a login or sign-in: the routing engine over the
stored pool assignments and the targets' health, every decision logged.

Shared by password logins (``portal.logins``) and SSO through the portal
(``sso.flow``), which store a new pool assignment at different moments.
"""

from __future__ import annotations

import logging

import attr

from synapse_login_redirect.portal.health import TargetHealth
from synapse_login_redirect.routing.engine import (
    Decision,
    LoginSubject,
    RoutingEngine,
    claim,
    route,
)
from synapse_login_redirect.store.assignments import AssignmentTable

logger = logging.getLogger(__name__)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Placement:
    """Decides which target a subject goes to, and stores new pool users."""

    _engine: RoutingEngine
    _store: AssignmentTable
    _health: TargetHealth

    async def decide(self, subject: LoginSubject) -> Decision | None:
        """Where ``subject``'s login goes, logged; None if unplaceable. A new
        pool assignment is left to the caller to store (``claim``)."""
        decision = await route(
            self._engine,
            subject,
            self._store,
            unhealthy=await self._health.unhealthy(),
        )
        who = subject.mxid or subject.user_key
        if decision is None:
            logger.info("Portal cannot place the login of %s", who)
            return None
        logger.info(
            "Login of %s goes to %s (%s)", who, decision.target, decision.reason
        )
        return decision

    async def claim(self, subject: LoginSubject, decision: Decision) -> Decision:
        """Store a new assignment; the decision of the one stored first."""
        stored = await claim(self._engine, subject, self._store, decision)
        if stored is not decision:
            logger.info(
                "Login of %s goes to %s instead: another login placed it first",
                subject.mxid or subject.user_key,
                stored.target,
            )
        return stored

    async def remember_sign_in(self, user_key: str, target: str) -> None:
        """Store a new pool user's assignment once their SSO sign-in at
        ``target`` completed; one that another login stored first stays."""
        stored = await self._store.claim(user_key, target, None)
        if stored != target:
            logger.info(
                "Sign-in of %s completed at %s; another login placed it on %s first",
                user_key,
                target,
                stored,
            )
