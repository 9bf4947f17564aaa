"""MSC1731 for Synapse's fallback login page: ``onLogin(response, homeserver)``.

The page (``/_matrix/static/client/login/``) calls ``matrixLogin.onLogin``
with the login response only. The module serves the page's script with that
call replaced: the callback, or ``window.onLogin`` if the embedding app
defined one (the name MSC1731 uses), gets the homeserver as a second argument,
taken from the response's ``well_known`` (which the server vouches for), else
from the ``homeserver`` that MSC1731 adds to the SSO redirect, else this
server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.web.server import Request

from synapse_login_redirect._synapse import (
    FALLBACK_LOGIN_PAGE,
    FALLBACK_LOGIN_SCRIPT,
    IncompatibleSynapseError,
    fallback_login_script,
    hide_query_args_from_log,
    serve_static_file,
)
from synapse_login_redirect.web.pages import forbid_leaks
from synapse_login_redirect.web.urls import LOGIN_TOKEN_PARAM

_CALL = "matrixLogin.onLogin(response);"
_NEW_CALL = "loginRedirectOnLogin(response);"
_HELPER = """
/* Added by synapse-login-redirect (MSC1731): onLogin(response, homeserver). */
function loginRedirectHomeserver(response) {
    var homeserver = response.well_known && response.well_known["m.homeserver"];
    if (homeserver && homeserver.base_url) {
        return homeserver.base_url;
    }
    return parseQsFromUrl().homeserver || location.origin;
}

function loginRedirectOnLogin(response) {
    var homeserver = loginRedirectHomeserver(response);
    if (typeof window.onLogin === "function") {
        window.onLogin(response, homeserver);
    } else {
        matrixLogin.onLogin(response, homeserver);
    }
}
"""


def patched_script(original: str) -> str:
    """Synapse's script with the one ``onLogin`` call replaced, helper appended."""
    if original.count(_CALL) != 1:
        raise IncompatibleSynapseError(
            f"the fallback login script does not call {_CALL!r} exactly once"
        )
    return original.replace(_CALL, _NEW_CALL) + _HELPER


def serve_fallback_page() -> None:
    """Wherever Synapse serves the fallback page: serve the patched script, and
    keep the ``loginToken`` an SSO sign-in brings back to the page out of
    Synapse's access log."""
    body = patched_script(fallback_login_script()).encode("utf-8")

    def render_page(request: Request, render_synapse_page: Callable[[], Any]) -> Any:
        hide_query_args_from_log(request, (LOGIN_TOKEN_PARAM,))
        forbid_leaks(request)  # its scripts and images would get the token as referrer
        return render_synapse_page()

    def render_script(request: Request, _: Callable[[], Any]) -> bytes:
        headers = request.responseHeaders
        headers.setRawHeaders(
            b"Content-Type", [b"application/javascript; charset=utf-8"]
        )
        headers.setRawHeaders(b"Cache-Control", [b"no-cache"])
        return body

    serve_static_file(FALLBACK_LOGIN_PAGE, render_page)
    serve_static_file(FALLBACK_LOGIN_SCRIPT, render_script)
