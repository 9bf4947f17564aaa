"""The Synapse module: wires the gateway, the target role and the portal together."""

from __future__ import annotations

import logging
import os
from typing import Any

from synapse.module_api import ModuleApi

from synapse_login_redirect._synapse import (
    LOGIN_SERVLET,
    SSO_REDIRECT_PATTERNS,
    SSO_REDIRECT_SERVLET,
    RouteHook,
    RouteKey,
    SsoCompletionGuard,
    check_appservice_support,
    check_synapse_support,
    client_site_tags,
    guard_sso_completions,
    on_client_api_resources,
    sso_client_whitelist,
    synapse_version,
)
from synapse_login_redirect.config.module import LoginRedirectConfig, parse_config
from synapse_login_redirect.gateway.hooks import LOGIN_ROUTE, LoginGateway
from synapse_login_redirect.gateway.login_input import check_login_input
from synapse_login_redirect.target.appservice_login import (
    UNSTABLE_TYPE,
    AppserviceLogin,
)
from synapse_login_redirect.target.fallback_login import serve_fallback_page
from synapse_login_redirect.target.well_known import (
    Advertisement,
    Interceptor,
    hook_login,
    hook_sso_redirect,
    sso_completion_guard,
)
from synapse_login_redirect.web.pages import Pages
from synapse_login_redirect.web.redirect_policy import ClientWhitelist
from synapse_login_redirect.web.urls import normalise_base_url
from synapse_login_redirect.wiring import build_portal

logger = logging.getLogger(__name__)


class LoginRedirect:
    """The Synapse module. Enable it under ``modules:`` in homeserver.yaml."""

    def __init__(self, config: LoginRedirectConfig, api: ModuleApi) -> None:
        check_synapse_support(api)
        self._config = config
        self._api = api
        base_url = config.base_url or normalise_base_url(api.public_baseurl)
        advert = Advertisement(
            base_url=base_url,
            identity_server=config.identity_server,
            base_cs_url=config.base_cs_url,
        )
        pages = Pages(api)
        interceptors: list[Interceptor] = [check_login_input]
        portal = None
        if config.portal is not None:
            portal = build_portal(
                config.portal,
                config.targets,
                api,
                base_cs_url=config.base_cs_url,
                pages=pages,
                redirect_policy=config.redirect_url,
            )
            interceptors.append(portal.intercept)
        if config.appservice_login.types:
            check_appservice_support()
            interceptors.append(AppserviceLogin(config.appservice_login, api).intercept)
        if UNSTABLE_TYPE in config.appservice_login.types:
            # Lets Synapse list the unstable type in GET /login; the gateway
            # answers such logins before Synapse would call this checker.
            api.register_password_auth_provider_callbacks(
                auth_checkers={(UNSTABLE_TYPE, ()): _handled_by_gateway}
            )
        hooks: dict[RouteKey, RouteHook] = {
            LOGIN_ROUTE: hook_login(advert, *interceptors)
        }
        sso_redirect = (SSO_REDIRECT_SERVLET, b"GET")
        missing_routes = {}
        if portal is not None:
            hooks[(LOGIN_SERVLET, b"GET")] = portal.hook_login_flows
        if portal is not None and portal.sso is not None:
            # Served by the module: the portal needs no SSO of its own.
            hooks[sso_redirect] = portal.sso.hook_redirect
            missing_routes[sso_redirect] = SSO_REDIRECT_PATTERNS
            guard: SsoCompletionGuard = portal.sso.guard_own_sign_in
        else:
            homeserver = base_url if config.sso_homeserver_param else None
            whitelist = ClientWhitelist.of(sso_client_whitelist(api))
            hooks[sso_redirect] = hook_sso_redirect(
                pages, config.redirect_url, whitelist, homeserver
            )
            guard = sso_completion_guard(pages, config.redirect_url, whitelist)
        guard_sso_completions(api, guard)
        self._gateway = LoginGateway(hooks, missing_routes)
        on_client_api_resources(api, self._gateway.attach)
        serve_fallback_page()
        api.delayed_background_call(0, self._check_started, desc="login_redirect_check")

    @staticmethod
    def parse_config(config: dict[str, Any]) -> LoginRedirectConfig:
        return parse_config(config)

    def _check_started(self) -> None:
        """Refuse to run when this process serves the client API but Synapse
        built no login route for the gateway to hook (e.g. auth delegated to MAS)."""
        if LOGIN_ROUTE in self._gateway.hooked:
            return
        if not client_site_tags(self._api):
            return
        logger.critical(
            "synapse-login-redirect: this process serves the client API, but "
            "Synapse %s built no /login route for the login gateway to hook "
            "(is authentication delegated to MAS? The module needs Synapse's "
            "own /login), so logins cannot be redirected. Stopping.",
            synapse_version(),
        )
        os._exit(1)


async def _handled_by_gateway(username: str, login_type: str, login_dict: Any) -> None:
    """Never accepts: appservice logins are completed by Synapse's own code."""
    return None
