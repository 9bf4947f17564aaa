"""Single sign-on through the portal (MSC1730's SSO flow, MSC1731).

1. ``GET /login/sso/redirect[/{idp}]?redirectUrl=C`` at the portal: C is
   checked, then the browser goes to the home-realm page. ``GET /login``
   lists that page as an identity provider (``REALM_IDP_ID``), so clients that
   show one button per provider offer it too.
2. The page asks for a department or an email address / Matrix ID, and the
   routing engine picks the target. The portal starts a one-time session,
   bound to the browser by a cookie, and redirects to the target's own
   ``/login/sso/redirect[/{idp}]`` with ``redirectUrl`` = the portal's
   completion URL.
3. The target signs the user in and sends the browser to the completion URL
   with ``loginToken``. The portal checks the session and cookie, records
   which target minted the token (a hash), and sends the browser on to C with
   ``homeserver=<target>`` and ``loginToken`` (through Synapse's confirmation
   page unless C's origin and path are in ``sso.client_whitelist``).
4. ``m.login.token`` at the portal is proxied to the target that minted the
   token (see ``Portal``).

For the IdPs in ``portal_idps`` the portal signs the user in first, with
Synapse's own SSO: step 2 becomes a session without a target and a redirect
to the portal's own ``/login/sso/redirect/{idp}``, whose ``redirectUrl`` is the
portal's bounce URL. ``OidcMappingProvider`` (``SamlMappingProvider``) keeps
the IdP's claims by IdP and subject; at the bounce the portal uses up its own
login token to learn the user and the IdP they signed in at (which must be the
session's), takes the claims that IdP gave for them since the session began,
routes them, and continues with step 2's redirect to the target, whose
sign-in with the same IdP is then silent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, cast
from urllib.parse import urlencode

from synapse.module_api import DirectServeHtmlResource
from synapse.module_api.errors import Codes, ConfigError, SynapseError
from twisted.web.resource import IResource

from synapse_login_redirect._synapse import (
    AddressLimiter,
    LimitExceededError,
    RouteCallback,
    SynapseRequest,
    TokenLogin,
)
from synapse_login_redirect.config.portal import PortalSsoConfig, Target
from synapse_login_redirect.gateway.limits import oversized, rate_limit_key
from synapse_login_redirect.gateway.request_body import query_arg
from synapse_login_redirect.routing.engine import SELF, Decision, LoginSubject
from synapse_login_redirect.sso.sessions import (
    PAGES_PATH,
    REFUSALS,
    SIGN_IN_FAILED,
    SIGN_IN_UNAVAILABLE,
    UNKNOWN_SESSION,
    BrowserSessions,
)
from synapse_login_redirect.store.idp_claims import IdpClaimTable
from synapse_login_redirect.store.login_tokens import LoginTokenTable
from synapse_login_redirect.store.sso_sessions import REFUSED_USED, SsoSessionTable
from synapse_login_redirect.web.pages import (
    PageError,
    Pages,
    PageTree,
    check_redirect_url,
    forbid_leaks,
)
from synapse_login_redirect.web.redirect_policy import (
    ClientWhitelist,
    RedirectUrlPolicy,
)
from synapse_login_redirect.web.urls import (
    DEPARTMENT_PARAM,
    HOMESERVER_PARAM,
    IDP_PARAM,
    LOGIN_TOKEN_PARAM,
    REDIRECT_URL_PARAM,
    SESSION_PARAM,
    USER_PARAM,
    add_query_params,
    sso_redirect_path,
)

logger = logging.getLogger(__name__)

REALM_PAGE = "realm"
COMPLETE_PAGE = "complete"
BOUNCE_PAGE = "bounce"
REALM_PATH = PAGES_PATH + REALM_PAGE
# The home-realm page's id among the identity providers of GET /login.
REALM_IDP_ID = "login-redirect-realm"
COMPLETE_PATH = PAGES_PATH + COMPLETE_PAGE
BOUNCE_PATH = PAGES_PATH + BOUNCE_PAGE
ATTRIBUTE_WAIT_STEPS = 20
ATTRIBUTE_WAIT_SECONDS = 0.05

# Routes a home-realm answer, or None if nothing places it; stores nothing.
Router = Callable[[LoginSubject], Awaitable[Decision | None]]
# Stores a user's new pool assignment: (user key, target name).
Assign = Callable[[str, str], Awaitable[None]]
# Uses up a login token of the portal's own: who it logged in, at which IdP.
ConsumeLoginToken = Callable[[str], Awaitable[TokenLogin | None]]
# A user's (IdP id, remote user id) pairs.
ExternalIds = Callable[[str], Awaitable[list[tuple[str, str]]]]
Sleep = Callable[[float], Awaitable[None]]

_UNPLACED = (
    "We cannot tell which homeserver your account is on. Check what you "
    "typed, or ask your administrator."
)


class SsoPortal:
    """Single sign-on through the portal: the home-realm page, the portal's own
    IdPs, and the bounce that sends each sign-in on to the user's target.

    A refusal raises ``PageError``; the entry point (the SSO redirect hook, a
    page) answers with its error page.
    """

    def __init__(
        self,
        config: PortalSsoConfig,
        targets: Mapping[str, Target],
        router: Router,
        is_failing: Callable[[str], Awaitable[bool]],
        pages: Pages,
        policy: RedirectUrlPolicy,
        *,
        limit_address: AddressLimiter,
        assign: Assign,
        sessions: SsoSessionTable,
        tokens: LoginTokenTable,
        claims: IdpClaimTable,
        public_baseurl: str,
        client_whitelist: tuple[str, ...],
        consume_login_token: ConsumeLoginToken,
        external_ids: ExternalIds,
        sleep: Sleep,
    ) -> None:
        """``client_whitelist``: Synapse's ``sso.client_whitelist``."""
        self._config = config
        self._targets = targets
        self._router = router
        self._is_failing = is_failing
        self._pages = pages
        self._policy = policy
        self._limit_address = limit_address
        self._assign = assign
        self._session_table = sessions
        self._token_table = tokens
        self._claim_table = claims
        self._consume_login_token = consume_login_token
        self._external_ids = external_ids
        self._sleep = sleep
        self._public_baseurl = public_baseurl.rstrip("/")
        self._sessions = BrowserSessions(
            self._session_table,
            config.session_lifetime,
            config.max_sessions,
            secure_cookie=self._public_baseurl.startswith("https://"),
        )
        self._bounce_url = self._public_baseurl + BOUNCE_PATH
        self._whitelist = ClientWhitelist.of(client_whitelist)
        for entry, reason in self._whitelist.unusable:
            logger.warning(
                "sso.client_whitelist entry %r never skips the confirmation page "
                "of a sign-in through the portal: %s",
                entry,
                reason,
            )
        if config.portal_idps and not self._bounce_url.startswith(client_whitelist):
            raise ConfigError(
                f"synapse-login-redirect's portal.sso.portal_idps needs "
                f"{self._bounce_url} in Synapse's sso.client_whitelist, so that "
                "the portal's own sign-in comes back to it without asking",
                ("portal", "sso", "portal_idps"),
            )

    def page_tree(self, site_tags: Collection[str]) -> PageTree:
        """The portal's SSO pages, to serve at ``PAGES_PATH`` on the listeners
        tagged ``site_tags``."""
        pages_by_name = {
            REALM_PAGE: _Page(
                self._pages, get=self.show_realm_page, post=self.choose_realm
            ),
            COMPLETE_PAGE: _Page(self._pages, get=self.complete),
            BOUNCE_PAGE: _Page(self._pages, get=self.bounce),
        }
        return PageTree(
            {name: cast(IResource, page) for name, page in pages_by_name.items()},
            secrets=(LOGIN_TOKEN_PARAM,),
            site_tags=site_tags,
        )

    def hook_redirect(self, original: RouteCallback) -> RouteCallback:
        """A hook for every path of Synapse's SSO and CAS redirect servlet: the
        portal answers, except on the way to its own IdP (``redirectUrl`` = the
        bounce URL), which Synapse's own SSO handles."""

        async def on_GET(request: SynapseRequest, idp_id: str | None = None) -> Any:
            redirect_url = query_arg(request, REDIRECT_URL_PARAM)
            if redirect_url is not None and self._is_bounce(redirect_url):
                return await original(request, idp_id=idp_id)
            forbid_leaks(request)
            try:
                await self.start(request, idp_id)
            except PageError as e:
                self._pages.show(request, e)
            return None

        return on_GET

    def guard_own_sign_in(self, request: SynapseRequest, client_url: str) -> bool:
        """Synapse's own SSO on the portal completes only sign-ins on their way
        to the bounce (a SAML ``RelayState`` the browser changed included), so
        no token for the portal's own account reaches a client."""
        if self._is_bounce(client_url):
            return True
        logger.info("Refused an SSO sign-in at the portal for %r", client_url[:200])
        self._pages.error(
            request,
            400,
            SIGN_IN_FAILED,
            "This sign-in did not start on this portal's pages. Please start "
            "again from your app.",
        )
        return False

    def _is_bounce(self, url: str) -> bool:
        return url.startswith(self._bounce_url + "?")

    async def start(self, request: SynapseRequest, idp_id: str | None) -> None:
        """``GET /login/sso/redirect[/{idp}]`` at the portal: on to the realm page,
        or to the portal's own IdP with a new session."""
        raw_idp = None if idp_id is None else idp_id.encode("utf-8")
        _check_size(request, idp=raw_idp)
        redirect_url = query_arg(request, REDIRECT_URL_PARAM)
        if redirect_url is None:  # as Synapse's own servlet answers
            raise SynapseError(
                400,
                "Missing string query parameter redirectUrl",
                Codes.MISSING_PARAM,
            )
        own_idp = idp_id if idp_id in self._config.portal_idps else None
        # Only a start that stores a session counts as a login attempt.
        await self._check_limit(request, count=own_idp is not None)
        check_redirect_url(self._policy, redirect_url)
        params = {REDIRECT_URL_PARAM: redirect_url}
        if idp_id == REALM_IDP_ID:
            idp_id = None
        elif idp_id is not None:
            params[IDP_PARAM] = idp_id
        if own_idp is not None:
            session = await self._sessions.start(request, None, own_idp, redirect_url)
            bounce = f"{self._bounce_url}?" + urlencode({SESSION_PARAM: session})
            own_sso = sso_redirect_path(own_idp)
            _redirect(request, f"{own_sso}?" + urlencode({REDIRECT_URL_PARAM: bounce}))
            return
        _redirect(request, f"{REALM_PATH}?{urlencode(params)}")

    @property
    def realm_provider(self) -> dict[str, str]:
        """The home-realm page as an entry of ``identity_providers``."""
        return {"id": REALM_IDP_ID, "name": self._config.realm_page_name}

    async def token_target(self, token: str) -> Target | None:
        """The target that minted a login token the portal passed on, if any."""
        name = await self._token_table.target_of_token(token)
        return None if name is None else self._targets.get(name)

    async def show_realm_page(self, request: SynapseRequest) -> None:
        redirect_url = query_arg(request, REDIRECT_URL_PARAM)
        if redirect_url is None:
            raise PageError(
                400,
                "Missing redirectUrl",
                "Start signing in from your app: it tells the portal where to "
                "return to.",
            )
        check_redirect_url(self._policy, redirect_url)
        self._realm_page(request, 200, redirect_url, query_arg(request, IDP_PARAM))

    def _realm_page(
        self,
        request: SynapseRequest,
        code: int,
        redirect_url: str,
        idp_id: str | None,
        error: str | None = None,
    ) -> None:
        self._pages.realm(
            request,
            code,
            action=REALM_PATH,
            redirect_url=redirect_url,
            idp_id=idp_id,
            departments=list(self._config.departments),
            ask_user=self._config.ask_user,
            error=error,
        )

    async def choose_realm(self, request: SynapseRequest) -> None:
        """The realm form's answer: start a session and go to the target's SSO.

        Counts as a login attempt, before anything is looked up or stored.
        """
        await self._check_limit(request, count=True)
        redirect_url = query_arg(request, REDIRECT_URL_PARAM)
        if redirect_url is None:
            await self.show_realm_page(request)
            return
        check_redirect_url(self._policy, redirect_url)
        idp_id = query_arg(request, IDP_PARAM) or None
        target_name, assign_user_key, problem = await self._place(request)
        if target_name is None:
            self._realm_page(request, 403, redirect_url, idp_id, error=problem)
            return
        target = self._targets[target_name]
        await self._check_answering(target)
        session = await self._sessions.start(
            request, target.name, idp_id, redirect_url, assign_user_key
        )
        self._to_target(request, target, idp_id, session)

    async def bounce(self, request: SynapseRequest) -> None:
        """Back from the portal's own IdP: route the user's attributes."""
        pending, session_id, login_token = await self._sessions.returned(
            request, self._session_table.pending_session
        )
        login = await self._consume_login_token(login_token)
        attributes = None
        if login is not None and login.idp_id == pending.idp_id:
            started = self._sessions.started_ts(pending)
            attributes = await self._claims(login, started)
        localpart = _localpart(None if login is None else login.user_id)
        if attributes is None or localpart is None:
            raise PageError(403, SIGN_IN_FAILED, UNKNOWN_SESSION)
        emails = attributes.get("email")
        subject = LoginSubject(
            localpart=localpart,
            email=emails[0] if emails else None,
            attributes=attributes,
        )
        decision = await self._router(subject)
        if decision is None or decision.target == SELF:
            raise PageError(403, SIGN_IN_FAILED, _UNPLACED)
        target = self._targets[decision.target]
        await self._check_answering(target)
        assign_user_key = _assign_user_key(subject, decision)
        if not await self._session_table.set_target(
            session_id, target.name, assign_user_key
        ):
            raise PageError(403, SIGN_IN_FAILED, REFUSALS[REFUSED_USED])
        idp_id = self._config.portal_idps.get(pending.idp_id or "")
        self._to_target(request, target, idp_id, session_id)

    async def _claims(
        self, login: TokenLogin, started: int
    ) -> dict[str, list[str]] | None:
        """What the IdP of this sign-in said of the user since the session
        began (``started``, ms), used up.

        SAML's mapping provider writes them in the background, so a missing
        record is retried for up to a second.
        """
        if login.idp_id is None:
            return None
        remote_ids = [
            remote_id
            for provider, remote_id in await self._external_ids(login.user_id)
            if provider == login.idp_id
        ]
        for _ in range(ATTRIBUTE_WAIT_STEPS):
            for remote_id in remote_ids:
                claims = await self._claim_table.take_claims(
                    login.idp_id, remote_id, started
                )
                if claims is not None:
                    return claims
            await self._sleep(ATTRIBUTE_WAIT_SECONDS)
        return None

    async def _check_limit(self, request: SynapseRequest, *, count: bool) -> None:
        """A 429 ``PageError`` if the browser's address is over Synapse's
        ``rc_login.address`` limit (an IPv6 address's /64 counts as one);
        ``count`` makes this request an attempt."""
        address = rate_limit_key(request.get_client_ip_if_available())
        try:
            await self._limit_address(address, update=count)
        except LimitExceededError as e:
            seconds = max(1, math.ceil((e.retry_after_ms or 0) / 1000))
            wait = f"{seconds} seconds" if seconds < 120 else f"{seconds // 60} minutes"
            raise PageError(
                429,
                "Too many sign-in attempts",
                f"Too many sign-in attempts came from your network. Please try "
                f"again in {wait}.",
                {b"Retry-After": str(seconds).encode("ascii")},
            ) from None

    async def _check_answering(self, target: Target) -> None:
        """A 503 ``PageError`` if health checks find ``target`` failing."""
        if await self._is_failing(target.name):
            raise PageError(
                503,
                SIGN_IN_UNAVAILABLE,
                f"The homeserver {target.public_name} is not answering right "
                "now. Please try again later.",
            )

    def _to_target(
        self,
        request: SynapseRequest,
        target: Target,
        idp_id: str | None,
        session_id: str,
    ) -> None:
        """On to the target's own SSO, coming back to the completion URL."""
        completion = f"{self._public_baseurl}{COMPLETE_PATH}?" + urlencode(
            {SESSION_PARAM: session_id}
        )
        sso_path = sso_redirect_path(idp_id or None)
        location = f"{target.base_url}{sso_path}?" + urlencode(
            {REDIRECT_URL_PARAM: completion}
        )
        logger.info("SSO sign-in %s goes to %s", session_id[:8], target.name)
        _redirect(request, location)

    async def _place(
        self, request: SynapseRequest
    ) -> tuple[str | None, str | None, str]:
        """The target for the realm form's answer and the user key of a new pool
        assignment to it, or None, None and what to say."""
        department = (query_arg(request, DEPARTMENT_PARAM) or "").strip()
        user = (query_arg(request, USER_PARAM) or "").strip()
        if department:
            target = self._config.departments.get(department)
            if target is None:
                return None, None, "Please choose a department from the list."
            return target, None, ""
        if not user or not self._config.ask_user:
            return (
                None,
                None,
                "Please tell us your department or your email address.",
            )
        if "@" in user and not user.startswith("@"):
            subject = LoginSubject(email=user)
        else:
            subject = LoginSubject.from_user(user)
        if not subject.is_plausible():
            return (
                None,
                None,
                "Please enter a Matrix ID (@name:server) or an email address.",
            )
        decision = await self._router(subject)
        if decision is None or decision.target == SELF:
            return None, None, _UNPLACED
        return decision.target, _assign_user_key(subject, decision), ""

    async def complete(self, request: SynapseRequest) -> None:
        """The target sent the browser back: pass the token on to the client."""
        completion, session_id, login_token = await self._sessions.returned(
            request, self._session_table.complete_session
        )
        assert completion.target is not None
        assert completion.client_redirect_url is not None
        target = self._targets.get(completion.target)
        if target is None:  # removed from the config since the session began
            raise PageError(403, SIGN_IN_FAILED, UNKNOWN_SESSION)
        client_url = completion.client_redirect_url
        # Judged again: the policy may have changed since the session began.
        check_redirect_url(self._policy, client_url)
        lifetime_ms = int(self._config.token_lifetime * 1000)
        await self._token_table.remember_token(login_token, target.name, lifetime_ms)
        if completion.assign_user_key is not None:  # a new pool user signed in
            await self._assign(completion.assign_user_key, target.name)
        self._sessions.forget(request, session_id)
        final_url = add_query_params(
            client_url,
            [(HOMESERVER_PARAM, target.base_url), (LOGIN_TOKEN_PARAM, login_token)],
        )
        if self._whitelist.admits(final_url):
            _redirect(request, final_url)
        else:
            self._pages.confirm(request, client_url, final_url, target.public_name)


def _assign_user_key(subject: LoginSubject, decision: Decision) -> str | None:
    """The user key to assign to the decision's target once the sign-in
    completes, if the pool placed a new user."""
    return subject.user_key if decision.new_assignment else None


def _redirect(request: SynapseRequest, location: str) -> None:
    request.redirect(location.encode("utf-8"))  # type: ignore[no-untyped-call]
    request.finish()


def _check_size(request: SynapseRequest, **fields: bytes | None) -> None:
    """A ``PageError`` if the request is beyond the caps of ``gateway.limits``."""
    refusal = oversized(request, **fields)
    if refusal is None:
        return
    code, reason = refusal
    logger.info("Refused an oversized SSO request: %s", reason)
    raise PageError(code, SIGN_IN_FAILED, f"{reason} Please start again from your app.")


class _Page(DirectServeHtmlResource):
    """An HTML page of the portal: GET, and POST for forms, each answered by
    its handler, or by the error page of the ``PageError`` it raised (also for
    a request beyond the caps of ``gateway.limits``)."""

    def __init__(
        self,
        pages: Pages,
        get: Callable[[SynapseRequest], Awaitable[None]],
        post: Callable[[SynapseRequest], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self._pages = pages
        self._get = get
        self._post = post

    async def _async_render_GET(self, request: SynapseRequest) -> None:
        await self._answer(request, self._get)

    async def _async_render_POST(self, request: SynapseRequest) -> None:
        if self._post is None:
            raise SynapseError(405, "Method not allowed", Codes.UNRECOGNIZED)
        await self._answer(request, self._post)

    async def _answer(
        self,
        request: SynapseRequest,
        handler: Callable[[SynapseRequest], Awaitable[None]],
    ) -> None:
        try:
            _check_size(request)
            await handler(request)
        except PageError as e:
            self._pages.show(request, e)


def _localpart(user_id: str | None) -> str | None:
    if user_id is None or not user_id.startswith("@"):
        return None
    return user_id[1:].partition(":")[0].lower()
