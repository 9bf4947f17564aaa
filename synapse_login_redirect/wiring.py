"""Builds the portal's services from Synapse's real parts.

The services take their collaborators as arguments (the tables, a clock, the
reactor, an HTTP agent, the rate limiter, Synapse's own SSO), so unit tests
give them fakes; here the real ones are made, from the ``ModuleApi``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial

from synapse.module_api import ModuleApi
from twisted.internet import reactor
from twisted.web.client import Agent, HTTPConnectionPool

from synapse_login_redirect._synapse import (
    AddressLimiter,
    client_site_tags,
    consume_login_token,
    external_ids_of,
    login_address_limiter,
    sso_client_whitelist,
)
from synapse_login_redirect.config.portal import PortalConfig, PortalSsoConfig, Target
from synapse_login_redirect.portal.health import Repeat, TargetHealth
from synapse_login_redirect.portal.logins import Portal
from synapse_login_redirect.portal.placement import Placement
from synapse_login_redirect.portal.proxy import LoginProxy
from synapse_login_redirect.routing.engine import SELF
from synapse_login_redirect.sso.flow import SsoPortal
from synapse_login_redirect.sso.sessions import PAGES_PATH
from synapse_login_redirect.store.assignments import AssignmentTable
from synapse_login_redirect.store.idp_claims import IdpClaimTable
from synapse_login_redirect.store.login_tokens import LoginTokenTable
from synapse_login_redirect.store.sso_sessions import SsoSessionTable
from synapse_login_redirect.store.tables import ModuleTables, module_tables
from synapse_login_redirect.store.target_health import TargetHealthTable
from synapse_login_redirect.web.pages import Pages
from synapse_login_redirect.web.redirect_policy import RedirectUrlPolicy


def build_portal(
    config: PortalConfig,
    targets: Mapping[str, Target],
    api: ModuleApi,
    *,
    base_cs_url: bool,
    pages: Pages,
    redirect_policy: RedirectUrlPolicy,
) -> Portal:
    """The portal role, its SSO pages registered with Synapse if it has SSO."""
    tables = module_tables(api)
    assignments = AssignmentTable(tables)
    limit_address = login_address_limiter(api)
    agent = _keep_alive_agent(config.proxy_timeout)
    proxy = LoginProxy(config.proxy_timeout, agent, reactor)
    health = TargetHealth(
        [targets[n] for n in config.engine.pool.weights if n != SELF],
        config.health_check_interval,
        config.proxy_timeout,
        proxy.check,
        table=TargetHealthTable(tables),
        clock=api.get_current_time_msec,
        repeat=_health_checks(api),
    )
    placement = Placement(config.engine, assignments, health)
    sso = None
    if config.sso is not None:
        sso = _build_sso(
            config.sso,
            targets,
            api,
            tables,
            placement,
            health,
            pages,
            redirect_policy,
            limit_address,
        )
    return Portal(
        config,
        targets,
        base_cs_url=base_cs_url,
        placement=placement,
        proxy=proxy,
        health=health,
        limit_address=limit_address,
        sso=sso,
    )


def _build_sso(
    config: PortalSsoConfig,
    targets: Mapping[str, Target],
    api: ModuleApi,
    tables: ModuleTables,
    placement: Placement,
    health: TargetHealth,
    pages: Pages,
    redirect_policy: RedirectUrlPolicy,
    limit_address: AddressLimiter,
) -> SsoPortal:
    sso = SsoPortal(
        config,
        targets,
        placement.decide,
        health.is_failing,
        pages,
        redirect_policy,
        limit_address=limit_address,
        assign=placement.remember_sign_in,
        sessions=SsoSessionTable(tables),
        tokens=LoginTokenTable(tables),
        claims=IdpClaimTable(tables),
        public_baseurl=api.public_baseurl,
        client_whitelist=sso_client_whitelist(api),
        consume_login_token=partial(consume_login_token, api),
        external_ids=partial(external_ids_of, api),
        sleep=api.sleep,
    )
    api.register_web_resource(
        PAGES_PATH.rstrip("/"), sso.page_tree(client_site_tags(api))
    )
    return sso


def _keep_alive_agent(connect_timeout: float) -> Agent:
    """The proxy's HTTP client on Twisted's reactor: a bare ``Agent`` with its
    own pool of keep-alive connections for concurrent logins; idle ones closed
    after two minutes (as Synapse's own client does)."""
    pool = HTTPConnectionPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
    pool.maxPersistentPerHost = 20
    pool.cachedConnectionTimeout = 120
    return Agent(reactor, connectTimeout=connect_timeout, pool=pool)  # type: ignore[no-untyped-call]


def _health_checks(api: ModuleApi) -> Repeat | None:
    """Runs the health checks on the process that runs Synapse's background
    tasks; None on the others."""
    if not api.should_run_background_tasks():
        return None

    def repeat(check_all: Callable[[], Awaitable[None]], interval_ms: int) -> None:
        api.looping_background_call(
            check_all, interval_ms, desc="login_redirect_health_checks"
        )

    return repeat
