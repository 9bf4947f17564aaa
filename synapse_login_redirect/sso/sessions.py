"""One-time SSO sessions bound to the browser by a cookie (the SSO spec's CSRF TODO).

A session starts at the portal and must come back, once and before it expires,
to the portal's pages in the same browser: the cookie holds a nonce whose hash
the database keeps. Refusals raise ``PageError``: an error page a user can
act on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import attr

from synapse_login_redirect._synapse import SynapseRequest
from synapse_login_redirect.gateway.request_body import query_arg
from synapse_login_redirect.store.sso_sessions import (
    REFUSED_EXPIRED,
    REFUSED_OTHER_BROWSER,
    REFUSED_UNKNOWN,
    REFUSED_USED,
    Completion,
    Refusal,
    SsoSessionTable,
)
from synapse_login_redirect.web.pages import PageError
from synapse_login_redirect.web.urls import LOGIN_TOKEN_PARAM, SESSION_PARAM

logger = logging.getLogger(__name__)

PAGES_PATH = "/_synapse/client/login_redirect/"
COOKIE_PREFIX = "login_redirect_sso_"
# Titles of the sign-in pages' error pages.
SIGN_IN_FAILED = "Sign-in failed"
SIGN_IN_UNAVAILABLE = "Sign-in unavailable"

UNKNOWN_SESSION = (
    "This sign-in link is not valid here. Please start again from your app."
)
REFUSALS: Mapping[Refusal, str] = {
    REFUSED_UNKNOWN: UNKNOWN_SESSION,
    REFUSED_EXPIRED: "This sign-in took too long. Please start again from your app.",
    REFUSED_USED: "This sign-in link was already used. Please start again from your app.",
    REFUSED_OTHER_BROWSER: (
        "This sign-in was started in another browser. Please finish it in the "
        "browser where you started, or start again from your app."
    ),
}
_FULL = "Too many sign-ins are in progress. Please try again in a few minutes."

# A store method checking a session: (session id, cookie nonce) -> the outcome.
SessionCheck = Callable[[str, str | None], Awaitable[Completion]]


@attr.s(frozen=True, slots=True, auto_attribs=True)
class BrowserSessions:
    """One-time sign-in sessions, each bound to the browser that started it:
    kept in ``store`` for ``lifetime`` seconds, at most ``max_sessions`` at
    once, with cookies marked Secure if ``secure_cookie``."""

    _store: SsoSessionTable
    _lifetime: float
    _max_sessions: int
    _secure_cookie: bool

    async def start(
        self,
        request: SynapseRequest,
        target: str | None,
        idp_id: str | None,
        redirect_url: str,
        assign_user_key: str | None = None,
    ) -> str:
        """A new session, bound to this browser by a cookie: its id.

        Raises ``PageError`` when too many sessions are in progress.
        """
        session = await self._store.start_session(
            target,
            idp_id,
            redirect_url,
            assign_user_key,
            lifetime_ms=self._lifetime_ms,
            max_sessions=self._max_sessions,
        )
        if session is None:
            logger.warning(
                "SSO sign-in refused: %d sign-ins in progress (portal.sso.max_sessions)",
                self._max_sessions,
            )
            raise PageError(503, SIGN_IN_UNAVAILABLE, _FULL)
        self._set_cookie(request, session.session_id, session.nonce, self._lifetime)
        return session.session_id

    async def returned(
        self, request: SynapseRequest, check: SessionCheck
    ) -> tuple[Completion, str, str]:
        """A sign-in coming back with a session and a login token: the checked
        session, its id and the token. Raises ``PageError`` if refused."""
        session_id = query_arg(request, SESSION_PARAM)
        login_token = query_arg(request, LOGIN_TOKEN_PARAM)
        if session_id is None or login_token is None:
            raise PageError(400, SIGN_IN_FAILED, UNKNOWN_SESSION)
        checked = await check(session_id, self._nonce(request, session_id))
        if checked.refusal is not None:
            logger.info("SSO session refused: %s", checked.refusal)
            raise PageError(403, SIGN_IN_FAILED, REFUSALS[checked.refusal])
        return checked, session_id, login_token

    def started_ts(self, session: Completion) -> int:
        """When ``session`` started (ms)."""
        return session.expires_ts - self._lifetime_ms

    @property
    def _lifetime_ms(self) -> int:
        return int(self._lifetime * 1000)

    def forget(self, request: SynapseRequest, session_id: str) -> None:
        """Drop the session's cookie from the browser."""
        self._set_cookie(request, session_id, "", 0)

    def _nonce(self, request: SynapseRequest, session_id: str) -> str | None:
        name = (COOKIE_PREFIX + session_id).encode("utf-8")
        cookie = request.getCookie(name)  # type: ignore[no-untyped-call]
        return None if cookie is None else str(cookie.decode("ascii", "replace"))

    def _set_cookie(
        self, request: SynapseRequest, session_id: str, value: str, max_age: float
    ) -> None:
        """HttpOnly, SameSite=Lax, sent only to the portal's SSO pages."""
        request.addCookie(  # type: ignore[no-untyped-call]
            COOKIE_PREFIX + session_id,
            value,
            path=PAGES_PATH,
            max_age=str(int(max_age)),
            secure=self._secure_cookie,
            httpOnly=True,
            sameSite="lax",
        )
