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
   page when C is not in ``sso.client_whitelist``).
4. ``m.login.token`` at the portal is proxied to the target that minted the
   token (see ``Portal``).

For the IdPs in ``portal_idps`` the portal signs the user in first, with
Synapse's own SSO: step 2 becomes a session without a target and a redirect
to the portal's own ``/login/sso/redirect/{idp}``, whose ``redirectUrl`` is the
portal's bounce URL. ``OidcMappingProvider`` keeps the IdP's claims; at the
bounce the portal uses up its own login token to learn the user, routes the
claims, and continues with step 2's redirect to the target, whose sign-in
with the same IdP is then silent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import cast
from urllib.parse import quote, unquote, urlencode

from synapse.module_api import (
    DirectServeHtmlResource,
    DirectServeJsonResource,
    ModuleApi,
    SynapseRequest,
)
from synapse.module_api.errors import Codes, ConfigError, SynapseError
from twisted.web.resource import IResource
from twisted.web.server import Request

from synapse_login_redirect.config import PortalSsoConfig, Target
from synapse_login_redirect.pages import Pages
from synapse_login_redirect.redirect_policy import RedirectUrlPolicy
from synapse_login_redirect.request_body import query_arg
from synapse_login_redirect.routing import SELF, LoginSubject
from synapse_login_redirect.sso_sessions import (
    LOGIN_TOKEN_PARAM,
    PAGES_PATH,
    REFUSALS,
    UNKNOWN_SESSION,
    BrowserSessions,
)
from synapse_login_redirect.sso_store import REFUSED_USED, SsoStore
from synapse_login_redirect.synapse_compat import (
    consume_login_token,
    external_ids_of,
    sso_client_whitelist,
)
from synapse_login_redirect.urls import HOMESERVER_PARAM, add_query_params

logger = logging.getLogger(__name__)

SSO_REDIRECT_PATH = re.compile(
    rb"^/_matrix/client/(?:r0|v3|unstable)/login/sso/redirect(?:/(?P<idp>[^/]+))?$"
)
REALM_PATH = PAGES_PATH + "realm"
# The home-realm page's id among the identity providers of GET /login.
REALM_IDP_ID = "login-redirect-realm"
COMPLETE_PATH = PAGES_PATH + "complete"
BOUNCE_PATH = PAGES_PATH + "bounce"
ATTRIBUTE_WAIT_STEPS = 20
ATTRIBUTE_WAIT_SECONDS = 0.05

# Routes a home-realm answer to a target name, or None if nothing places it.
Router = Callable[[LoginSubject], Awaitable[str | None]]

_UNPLACED = (
    "We cannot tell which homeserver your account is on. Check what you "
    "typed, or ask your administrator."
)


class SsoPortal:
    def __init__(
        self,
        config: PortalSsoConfig,
        targets: Mapping[str, Target],
        router: Router,
        is_failing: Callable[[str], Awaitable[bool]],
        api: ModuleApi,
        pages: Pages,
        policy: RedirectUrlPolicy,
    ) -> None:
        self._config = config
        self._targets = targets
        self._router = router
        self._is_failing = is_failing
        self._api = api
        self._pages = pages
        self._policy = policy
        self._store = SsoStore(api)
        self._public_baseurl = api.public_baseurl.rstrip("/")
        self._sessions = BrowserSessions(
            self._store,
            pages,
            config.session_lifetime,
            secure_cookie=self._public_baseurl.startswith("https://"),
        )
        self._redirect_resource = cast(IResource, _SsoRedirect(self))
        self._bounce_url = self._public_baseurl + BOUNCE_PATH
        if config.portal_idps and not self._bounce_url.startswith(
            sso_client_whitelist(api)
        ):
            raise ConfigError(
                f"synapse-login-redirect's portal.sso.portal_idps needs "
                f"{self._bounce_url} in Synapse's sso.client_whitelist, so that "
                "the portal's own sign-in comes back to it without asking",
                ("portal", "sso", "portal_idps"),
            )
        api.register_web_resource(
            REALM_PATH, _Page(get=self.show_realm_page, post=self.choose_realm)
        )
        api.register_web_resource(COMPLETE_PATH, _Page(get=self.complete))
        api.register_web_resource(BOUNCE_PATH, _Page(get=self.bounce))

    def redirect_override(self, request: Request) -> IResource | None:
        """The portal answers ``/login/sso/redirect`` itself, except on the way to
        its own IdP (``redirectUrl`` = the bounce URL), which Synapse handles."""
        if not SSO_REDIRECT_PATH.match(request.path):
            return None
        redirect_url = request.args.get(b"redirectUrl", [b""])[0]
        if redirect_url.startswith(self._bounce_url.encode() + b"?"):
            return None
        return self._redirect_resource

    async def start(self, request: SynapseRequest) -> None:
        """``GET /login/sso/redirect[/{idp}]`` at the portal: on to the realm page."""
        redirect_url = query_arg(request, "redirectUrl")
        if redirect_url is None:  # as Synapse's own servlet answers
            raise SynapseError(
                400,
                "Missing string query parameter redirectUrl",
                Codes.MISSING_PARAM,
            )
        if self._pages.refuse_redirect_url(request, self._policy, redirect_url):
            return
        params = {"redirectUrl": redirect_url}
        match = SSO_REDIRECT_PATH.match(request.path)
        idp_id = None
        if match and match.group("idp"):
            idp_id = unquote(match.group("idp").decode("utf-8", "replace"))
        if idp_id == REALM_IDP_ID:
            idp_id = None
        elif idp_id is not None:
            params["idp"] = idp_id
        if idp_id is not None and idp_id in self._config.portal_idps:
            session = await self._sessions.start(request, None, idp_id, redirect_url)
            bounce = f"{self._bounce_url}?" + urlencode({"session": session})
            own_sso = f"/_matrix/client/v3/login/sso/redirect/{quote(idp_id, safe='')}"
            _redirect(request, f"{own_sso}?" + urlencode({"redirectUrl": bounce}))
            return
        _redirect(request, f"{REALM_PATH}?{urlencode(params)}")

    @property
    def realm_provider(self) -> dict[str, str]:
        """The home-realm page as an entry of ``identity_providers``."""
        return {"id": REALM_IDP_ID, "name": self._config.realm_page_name}

    async def token_target(self, token: str) -> Target | None:
        """The target that minted a login token the portal passed on, if any."""
        name = await self._store.target_of_token(token)
        return None if name is None else self._targets.get(name)

    async def show_realm_page(self, request: SynapseRequest) -> None:
        redirect_url = query_arg(request, "redirectUrl")
        if redirect_url is None:
            self._pages.error(
                request,
                400,
                "Missing redirectUrl",
                "Start signing in from your app: it tells the portal where to "
                "return to.",
            )
            return
        if self._pages.refuse_redirect_url(request, self._policy, redirect_url):
            return
        self._realm_page(request, 200, redirect_url, query_arg(request, "idp"))

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
        """The realm form's answer: start a session and go to the target's SSO."""
        redirect_url = query_arg(request, "redirectUrl")
        if redirect_url is None:
            await self.show_realm_page(request)
            return
        if self._pages.refuse_redirect_url(request, self._policy, redirect_url):
            return
        idp_id = query_arg(request, "idp") or None
        target_name, problem = await self._place(request)
        if target_name is None:
            self._realm_page(request, 403, redirect_url, idp_id, error=problem)
            return
        target = self._targets[target_name]
        if await self._refuse_failing(request, target):
            return
        session = await self._sessions.start(request, target.name, idp_id, redirect_url)
        self._to_target(request, target, idp_id, session)

    async def bounce(self, request: SynapseRequest) -> None:
        """Back from the portal's own IdP: route the user's attributes."""
        returned = await self._sessions.returned(request, self._store.pending_session)
        if returned is None:
            return
        pending, session_id, login_token = returned
        user_id = await consume_login_token(self._api, login_token)
        attributes = None
        if user_id is not None:
            attributes = await self._attributes(user_id, pending.idp_id)
        localpart = _localpart(user_id)
        if attributes is None or localpart is None:
            self._pages.error(request, 403, "Sign-in failed", UNKNOWN_SESSION)
            return
        emails = attributes.get("email")
        subject = LoginSubject(
            localpart=localpart,
            email=emails[0] if emails else None,
            attributes=attributes,
        )
        target_name = await self._router(subject)
        if target_name is None or target_name == SELF:
            self._pages.error(request, 403, "Sign-in failed", _UNPLACED)
            return
        target = self._targets[target_name]
        if await self._refuse_failing(request, target):
            return
        if not await self._store.set_target(session_id, target.name):
            self._pages.error(request, 403, "Sign-in failed", REFUSALS[REFUSED_USED])
            return
        idp_id = self._config.portal_idps.get(pending.idp_id or "")
        self._to_target(request, target, idp_id, session_id)

    async def _attributes(
        self, user_id: str, idp_id: str | None
    ) -> dict[str, list[str]] | None:
        """What the portal's IdP said of the user at this sign-in.

        SAML's mapping provider writes them in the background, so a missing
        record is retried for up to a second.
        """
        remote_ids = [
            remote_id
            for provider, remote_id in await external_ids_of(self._api, user_id)
            if provider == idp_id
        ]
        for _ in range(ATTRIBUTE_WAIT_STEPS):
            for remote_id in remote_ids:
                attributes = await self._store.attributes_of(remote_id)
                if attributes is not None:
                    return attributes
            await self._api.sleep(ATTRIBUTE_WAIT_SECONDS)
        return None

    async def _refuse_failing(self, request: SynapseRequest, target: Target) -> bool:
        if not await self._is_failing(target.name):
            return False
        self._pages.error(
            request,
            503,
            "Sign-in unavailable",
            f"The homeserver {target.public_name} is not answering right now. "
            "Please try again later.",
        )
        return True

    def _to_target(
        self,
        request: SynapseRequest,
        target: Target,
        idp_id: str | None,
        session_id: str,
    ) -> None:
        """On to the target's own SSO, coming back to the completion URL."""
        completion = f"{self._public_baseurl}{COMPLETE_PATH}?" + urlencode(
            {"session": session_id}
        )
        sso_path = "/_matrix/client/v3/login/sso/redirect"
        if idp_id:
            sso_path += "/" + quote(idp_id, safe="")
        location = f"{target.base_url}{sso_path}?" + urlencode(
            {"redirectUrl": completion}
        )
        logger.info("SSO sign-in %s goes to %s", session_id[:8], target.name)
        _redirect(request, location)

    async def _place(self, request: SynapseRequest) -> tuple[str | None, str]:
        """The target for the realm form's answer, or None and what to say."""
        department = (query_arg(request, "department") or "").strip()
        user = (query_arg(request, "user") or "").strip()
        if department:
            target = self._config.departments.get(department)
            if target is None:
                return None, "Please choose a department from the list."
            return target, ""
        if not user or not self._config.ask_user:
            return None, "Please tell us your department or your email address."
        if "@" in user and not user.startswith("@"):
            subject = LoginSubject(email=user)
        else:
            subject = LoginSubject.from_user(user)
        if not subject.is_plausible():
            return None, "Please enter a Matrix ID (@name:server) or an email address."
        target = await self._router(subject)
        if target is None or target == SELF:
            return None, _UNPLACED
        return target, ""

    async def complete(self, request: SynapseRequest) -> None:
        """The target sent the browser back: pass the token on to the client."""
        returned = await self._sessions.returned(request, self._store.complete_session)
        if returned is None:
            return
        completion, session_id, login_token = returned
        assert completion.target is not None
        assert completion.client_redirect_url is not None
        target = self._targets.get(completion.target)
        if target is None:  # removed from the config since the session began
            self._pages.error(request, 403, "Sign-in failed", UNKNOWN_SESSION)
            return
        lifetime_ms = int(self._config.token_lifetime * 1000)
        await self._store.remember_token(login_token, target.name, lifetime_ms)
        self._sessions.forget(request, session_id)
        client_url = completion.client_redirect_url
        final_url = add_query_params(
            client_url,
            [(HOMESERVER_PARAM, target.base_url), (LOGIN_TOKEN_PARAM, login_token)],
        )
        if client_url.startswith(sso_client_whitelist(self._api)):
            _redirect(request, final_url)
        else:
            self._pages.confirm(request, client_url, final_url, target.public_name)


def _redirect(request: SynapseRequest, location: str) -> None:
    request.redirect(location.encode("utf-8"))  # type: ignore[no-untyped-call]
    request.finish()


class _SsoRedirect(DirectServeJsonResource):
    isLeaf = True

    def __init__(self, portal: SsoPortal) -> None:
        super().__init__()
        self._portal = portal

    async def _async_render_GET(self, request: SynapseRequest) -> None:
        await self._portal.start(request)


class _Page(DirectServeHtmlResource):
    """An HTML page of the portal: GET, and POST for forms."""

    def __init__(
        self,
        get: Callable[[SynapseRequest], Awaitable[None]],
        post: Callable[[SynapseRequest], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self._get = get
        self._post = post

    async def _async_render_GET(self, request: SynapseRequest) -> None:
        await self._get(request)

    async def _async_render_POST(self, request: SynapseRequest) -> None:
        if self._post is None:
            raise SynapseError(405, "Method not allowed", Codes.UNRECOGNIZED)
        await self._post(request)


def _localpart(user_id: str | None) -> str | None:
    if user_id is None or not user_id.startswith("@"):
        return None
    return user_id[1:].partition(":")[0].lower()
