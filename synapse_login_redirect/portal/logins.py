"""The portal role (MSC1730): send each password login on to the user's homeserver.

The routing engine picks a target; the portal then answers ``307`` to the
target's ``/login`` (redirect mode) or posts the login there itself and relays
the answer with the target's ``well_known`` (proxy mode). Logins the engine
places on ``self``, and every login type but ``m.login.password``, are left to
the portal's own Synapse, except ``m.login.token`` with a token that a target
minted for single sign-on through the portal (see ``sso.flow``), which is
proxied to that target. Logins the portal examines count against Synapse's
``rc_login.address`` limit, as they would at Synapse, before anything is
looked up, stored or sent on.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Mapping
from typing import Any

from synapse.module_api.errors import Codes, SynapseError

from synapse_login_redirect._synapse import (
    AddressLimiter,
    RouteCallback,
    SynapseRequest,
)
from synapse_login_redirect.config.portal import MODE_REDIRECT, PortalConfig, Target
from synapse_login_redirect.gateway.login_body import (
    PASSWORD_TYPE,
    SSO_TYPE,
    THIRDPARTY_ID,
    TOKEN_TYPE,
    USER_ID,
    LoginBody,
    read_login,
)
from synapse_login_redirect.gateway.request_body import raw_body
from synapse_login_redirect.portal.health import TargetHealth
from synapse_login_redirect.portal.placement import Placement
from synapse_login_redirect.portal.proxy import LoginProxy, TargetError
from synapse_login_redirect.routing.engine import SELF, Decision, LoginSubject
from synapse_login_redirect.sso.flow import SsoPortal
from synapse_login_redirect.target.well_known import Advertisement, LoginAnswer
from synapse_login_redirect.web.urls import login_url

logger = logging.getLogger(__name__)

_LOGIN_PATH = re.compile(rb"^/_matrix/client/(.+)/login$")


class Portal:
    """Routes ``m.login.password`` logins to targets; see the module docstring."""

    def __init__(
        self,
        config: PortalConfig,
        targets: Mapping[str, Target],
        *,
        base_cs_url: bool,
        placement: Placement,
        proxy: LoginProxy,
        health: TargetHealth,
        limit_address: AddressLimiter,
        sso: SsoPortal | None,
    ) -> None:
        self._targets = targets
        self._unplaced_message = config.unplaced_message
        self._adverts = {
            name: Advertisement(t.base_url, t.identity_server, base_cs_url)
            for name, t in targets.items()
        }
        self._placement = placement
        self._proxy = proxy
        self._health = health
        self._limit_address = limit_address
        self.sso = sso

    @property
    def routes_elsewhere(self) -> bool:
        """Whether some login may go to another homeserver."""
        return bool(self._targets)

    async def intercept(self, request: SynapseRequest) -> LoginAnswer | None:
        """Answer a password login meant for a target; None leaves it to Synapse.

        A body Synapse would refuse is never forwarded: bad JSON gets Synapse's
        own error, and an unknown identifier type, no user or no password is
        left to Synapse.
        """
        login = read_login(request)
        if login.type == TOKEN_TYPE:
            return await self._token_login(request, login.token)
        if login.type != PASSWORD_TYPE:
            return None
        subject = subject_of(login)
        if subject is None or login.password is None:
            return None
        await self._limit_address(request.get_client_ip_if_available())
        decision = await self._placement.decide(subject)
        if decision is None:
            raise SynapseError(403, self._unplaced_message, Codes.FORBIDDEN)
        return await self._send(request, subject, decision)

    async def _send(
        self, request: SynapseRequest, subject: LoginSubject, decision: Decision
    ) -> LoginAnswer | None:
        """Hand the login on as ``decision`` says. A new pool assignment is
        stored as the login goes to its target: with the 307 (or before Synapse
        logs the user in here), or once a proxied login succeeded at the target
        (a wrong password places nobody). If another process stored one first,
        the login follows it."""
        proxied = decision.target != SELF and (
            self._targets[decision.target].mode != MODE_REDIRECT
        )
        if decision.new_assignment and not proxied:
            decision = await self._placement.claim(subject, decision)
        if decision.target == SELF:
            return None
        target = self._targets[decision.target]
        if target.mode == MODE_REDIRECT:
            version = _client_api_version(request)
            location = login_url(target.base_url, version)
            request.responseHeaders.setRawHeaders(b"Location", [location.encode()])
            return 307, {}
        answer = await self._proxy_login(request, target)
        if not decision.new_assignment or answer[0] != 200:
            return answer  # only a login that worked places a new user
        stored = await self._placement.claim(subject, decision)
        if stored is decision:
            return answer
        return await self._send(request, subject, stored)

    async def _token_login(
        self, request: SynapseRequest, token: str | None
    ) -> LoginAnswer | None:
        """Proxy a login token to the target that minted it; others stay here."""
        if self.sso is None or token is None:
            return None
        await self._limit_address(request.get_client_ip_if_available())
        target = await self.sso.token_target(token)
        if target is None:
            return None
        logger.info("Token login goes to %s, which minted the token", target.name)
        return await self._proxy_login(request, target)

    async def _proxy_login(
        self, request: SynapseRequest, target: Target
    ) -> LoginAnswer:
        """Send the login on as the client sent it; Synapse's parser accepted
        it, so the target's reads it the same way."""
        version = _client_api_version(request)
        client_ip = request.get_client_ip_if_available()
        user_agent = request.getHeader(b"User-Agent")
        try:
            code, response = await self._proxy.post_login(
                target, version, raw_body(request), client_ip, user_agent
            )
        except TargetError as e:
            if e.unreachable:  # never because of an answer to one client
                await self._health.mark_unhealthy(target, e.detail)
            raise
        if code == 200:
            self._adverts[target.name].amend_login_response(response)
        return code, response

    def hook_login_flows(self, original: RouteCallback) -> RouteCallback:
        """A hook for ``GET /login``: list the login types the portal routes,
        and the home-realm page among the SSO identity providers."""
        routed = [PASSWORD_TYPE] if self.routes_elsewhere else []
        if self.sso is not None:
            routed += [SSO_TYPE, TOKEN_TYPE]

        async def on_GET(request: SynapseRequest, **kwargs: Any) -> Any:
            answer = original(request, **kwargs)  # sync in Synapse, async here
            code, response = await answer if inspect.isawaitable(answer) else answer
            flows = response.get("flows") if isinstance(response, dict) else None
            if code == 200 and isinstance(flows, list):
                listed = {f.get("type") for f in flows if isinstance(f, dict)}
                flows.extend({"type": t} for t in routed if t not in listed)
                if self.sso is not None:
                    self._list_realm_page(flows, self.sso.realm_provider)
            return code, response

        return on_GET

    @staticmethod
    def _list_realm_page(flows: list[Any], provider: dict[str, str]) -> None:
        for flow in flows:
            if isinstance(flow, dict) and flow.get("type") == SSO_TYPE:
                providers = flow.setdefault("identity_providers", [])
                if isinstance(providers, list) and provider not in providers:
                    providers.append(provider)


def subject_of(login: LoginBody) -> LoginSubject | None:
    """Who a password login is for: a Matrix user or an email address.

    Reads the identifier Synapse logs in (``m.id.user``, or
    ``m.id.thirdparty`` with medium ``email``), so the portal routes the very
    user the target will check. None when the body names nobody the portal
    can route, or nobody who could exist (``LoginSubject.is_plausible``).
    """
    subject = _named_subject(login)
    return subject if subject is not None and subject.is_plausible() else None


def _named_subject(login: LoginBody) -> LoginSubject | None:
    identifier = login.synapse_identifier
    if identifier is None:
        return None
    if identifier.type == USER_ID and identifier.user is not None:
        return LoginSubject.from_user(identifier.user.strip())
    if (
        identifier.type == THIRDPARTY_ID
        and identifier.medium == "email"
        and identifier.address is not None
    ):
        return LoginSubject(email=identifier.address.strip())
    return None


def _client_api_version(request: SynapseRequest) -> str:
    """``v3``, ``r0``, ``unstable`` or ``api/v1``: the version the client used."""
    match = _LOGIN_PATH.match(request.path)
    return match.group(1).decode("ascii") if match else "v3"
