"""Single sign-on through the portal (MSC1730's SSO flow, MSC1731).

1. ``GET /login/sso/redirect[/{idp}]?redirectUrl=C`` at the portal: C is
   checked, then the browser goes to the home-realm page.
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
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import cast
from urllib.parse import unquote, urlencode

from synapse.module_api import (
    DirectServeHtmlResource,
    DirectServeJsonResource,
    ModuleApi,
    SynapseRequest,
)
from synapse.module_api.errors import Codes, SynapseError
from twisted.web.resource import IResource

from synapse_login_redirect.config import PortalSsoConfig, Target
from synapse_login_redirect.pages import Pages
from synapse_login_redirect.redirect_policy import RedirectUrlPolicy
from synapse_login_redirect.request_body import query_arg, redact_arg_in_log
from synapse_login_redirect.routing import SELF, LoginSubject
from synapse_login_redirect.sso_store import (
    REFUSED_EXPIRED,
    REFUSED_OTHER_BROWSER,
    REFUSED_USED,
    SsoStore,
)
from synapse_login_redirect.synapse_compat import sso_client_whitelist
from synapse_login_redirect.urls import HOMESERVER_PARAM, add_query_params

logger = logging.getLogger(__name__)

SSO_REDIRECT_PATH = re.compile(
    rb"^/_matrix/client/(?:r0|v3|unstable)/login/sso/redirect(?:/(?P<idp>[^/]+))?$"
)
REALM_PATH = "/_synapse/client/login_redirect/realm"
COMPLETE_PATH = "/_synapse/client/login_redirect/complete"
COOKIE_PREFIX = "login_redirect_sso_"
LOGIN_TOKEN_PARAM = "loginToken"

# Routes a home-realm answer to a target name, or None if nothing places it.
Router = Callable[[LoginSubject], Awaitable[str | None]]

_REFUSALS = {
    REFUSED_EXPIRED: "This sign-in took too long. Please start again from your app.",
    REFUSED_USED: "This sign-in link was already used. Please start again from your app.",
    REFUSED_OTHER_BROWSER: (
        "This sign-in was started in another browser. Please finish it in the "
        "browser where you started, or start again from your app."
    ),
}
_UNKNOWN_SESSION = (
    "This sign-in link is not valid here. Please start again from your app."
)


class SsoPortal:
    def __init__(
        self,
        config: PortalSsoConfig,
        targets: Mapping[str, Target],
        router: Router,
        is_failing: Callable[[str], bool],
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
        self._secure_cookie = self._public_baseurl.startswith("https://")
        self.redirect_resource = cast(IResource, _SsoRedirect(self))
        api.register_web_resource(REALM_PATH, _RealmPage(self))
        api.register_web_resource(COMPLETE_PATH, _CompletionPage(self))

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
        if match and match.group("idp"):
            params["idp"] = unquote(match.group("idp").decode("utf-8", "replace"))
        _redirect(request, f"{REALM_PATH}?{urlencode(params)}")

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
        if self._is_failing(target.name):
            self._pages.error(
                request,
                503,
                "Sign-in unavailable",
                f"The homeserver {target.public_name} is not answering right now. "
                "Please try again later.",
            )
            return
        lifetime_ms = int(self._config.session_lifetime * 1000)
        session = await self._store.start_session(
            target.name, redirect_url, lifetime_ms
        )
        self._set_cookie(
            request, session.session_id, session.nonce, self._config.session_lifetime
        )
        completion = f"{self._public_baseurl}{COMPLETE_PATH}?" + urlencode(
            {"session": session.session_id}
        )
        sso_path = "/_matrix/client/v3/login/sso/redirect"
        if idp_id:
            sso_path += "/" + idp_id
        location = f"{target.base_url}{sso_path}?" + urlencode(
            {"redirectUrl": completion}
        )
        logger.info("SSO sign-in %s goes to %s", session.session_id[:8], target.name)
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
        target = await self._router(subject)
        if target is None or target == SELF:
            return None, (
                "We cannot tell which homeserver your account is on. Check "
                "what you typed, or ask your administrator."
            )
        return target, ""

    async def complete(self, request: SynapseRequest) -> None:
        """The target sent the browser back: pass the token on to the client."""
        session_id = query_arg(request, "session")
        login_token = query_arg(request, LOGIN_TOKEN_PARAM)
        redact_arg_in_log(request, LOGIN_TOKEN_PARAM)
        if session_id is None or login_token is None:
            self._pages.error(request, 400, "Sign-in failed", _UNKNOWN_SESSION)
            return
        cookie_name = (COOKIE_PREFIX + session_id).encode("utf-8")
        cookie = request.getCookie(cookie_name)  # type: ignore[no-untyped-call]
        nonce = None if cookie is None else cookie.decode("ascii", "replace")
        completion = await self._store.complete_session(session_id, nonce)
        if completion.refusal is not None:
            logger.info("SSO completion refused: %s", completion.refusal)
            message = _REFUSALS.get(completion.refusal, _UNKNOWN_SESSION)
            self._pages.error(request, 403, "Sign-in failed", message)
            return
        assert completion.target is not None
        assert completion.client_redirect_url is not None
        target = self._targets.get(completion.target)
        if target is None:  # removed from the config since the session began
            self._pages.error(request, 403, "Sign-in failed", _UNKNOWN_SESSION)
            return
        lifetime_ms = int(self._config.token_lifetime * 1000)
        await self._store.remember_token(login_token, target.name, lifetime_ms)
        self._set_cookie(request, session_id, "", 0)
        client_url = completion.client_redirect_url
        final_url = add_query_params(
            client_url,
            [(HOMESERVER_PARAM, target.base_url), (LOGIN_TOKEN_PARAM, login_token)],
        )
        if client_url.startswith(sso_client_whitelist(self._api)):
            _redirect(request, final_url)
        else:
            self._pages.confirm(request, client_url, final_url, target.public_name)

    def _set_cookie(
        self, request: SynapseRequest, session_id: str, value: str, max_age: float
    ) -> None:
        """The cookie binding a session to this browser, sent only to completion."""
        request.addCookie(  # type: ignore[no-untyped-call]
            COOKIE_PREFIX + session_id,
            value,
            path=COMPLETE_PATH,
            max_age=str(int(max_age)),
            secure=self._secure_cookie,
            httpOnly=True,
            sameSite="lax",
        )


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


class _RealmPage(DirectServeHtmlResource):
    def __init__(self, portal: SsoPortal) -> None:
        super().__init__()
        self._portal = portal

    async def _async_render_GET(self, request: SynapseRequest) -> None:
        await self._portal.show_realm_page(request)

    async def _async_render_POST(self, request: SynapseRequest) -> None:
        await self._portal.choose_realm(request)


class _CompletionPage(DirectServeHtmlResource):
    def __init__(self, portal: SsoPortal) -> None:
        super().__init__()
        self._portal = portal

    async def _async_render_GET(self, request: SynapseRequest) -> None:
        await self._portal.complete(request)
