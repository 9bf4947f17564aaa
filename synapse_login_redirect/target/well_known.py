"""The target role: tell clients which homeserver to use after logging in here.

MSC1730 (``well_known`` and the first draft's ``base_cs_url`` in ``/login``
responses) and MSC1731 (``homeserver`` beside ``loginToken`` after SSO).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_from_bytes, unquote_to_bytes

import attr

from synapse_login_redirect._synapse import (
    RouteCallback,
    RouteHook,
    SsoCompletionGuard,
    SynapseRequest,
)
from synapse_login_redirect.gateway.request_body import query_arg
from synapse_login_redirect.web.pages import PageError, Pages, check_redirect_url
from synapse_login_redirect.web.redirect_policy import (
    ClientWhitelist,
    RedirectUrlPolicy,
)
from synapse_login_redirect.web.urls import REDIRECT_URL_PARAM, set_homeserver_param

logger = logging.getLogger(__name__)

_REDIRECT_URL = REDIRECT_URL_PARAM.encode("ascii")


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Advertisement:
    """What a successful login here tells the client about where to go next."""

    base_url: str
    identity_server: str | None = None
    base_cs_url: bool = False

    def amend_login_response(self, response: dict[str, Any]) -> None:
        """Set ``well_known`` (keeping any other keys Synapse put there)."""
        well_known = dict(response.get("well_known") or {})
        well_known["m.homeserver"] = {"base_url": self.base_url}
        if self.identity_server is not None:
            well_known["m.identity_server"] = {"base_url": self.identity_server}
        response["well_known"] = well_known
        if self.base_cs_url:
            response["base_cs_url"] = self.base_url


# A status and JSON body that answer a login instead of Synapse.
LoginAnswer = tuple[int, dict[str, Any]]
# Sees a login first: answers it, refuses it (raising SynapseError) or
# returns None to let it go on.
Interceptor = Callable[[SynapseRequest], Awaitable[LoginAnswer | None]]


def hook_login(advert: Advertisement, *interceptors: Interceptor) -> RouteHook:
    """A hook for ``POST /login`` that advertises ``advert`` on success.

    Interceptors see the request first, in order; the first answer is the
    response, as it is (a portal's answer carries its target's ``well_known``).
    """

    def hook(original: RouteCallback) -> RouteCallback:
        async def on_POST(request: SynapseRequest, **kwargs: Any) -> Any:
            for intercept in interceptors:
                answer = await intercept(request)
                if answer is not None:
                    return answer
            code, response = await original(request, **kwargs)
            if code == 200 and isinstance(response, dict):
                advert.amend_login_response(response)
            return code, response

        return on_POST

    return hook


def hook_sso_redirect(
    pages: Pages,
    policy: RedirectUrlPolicy,
    whitelist: ClientWhitelist,
    homeserver: str | None,
) -> RouteHook:
    """A hook for ``GET /login/sso/redirect``: check ``redirectUrl`` (also
    against Synapse's ``whitelist``, which Synapse matches as a string prefix)
    and add MSC1731's ``homeserver`` (unless ``homeserver`` is None)."""

    def hook(original: RouteCallback) -> RouteCallback:
        async def on_GET(request: SynapseRequest, **kwargs: Any) -> Any:
            redirect_url = query_arg(request, REDIRECT_URL_PARAM)
            try:
                if redirect_url is not None:
                    check_redirect_url(policy, redirect_url, whitelist)
            except PageError as e:
                pages.show(request, e)
                return None
            if homeserver is not None:
                rewrite_redirect_url(request, homeserver)
            return await original(request, **kwargs)

        return on_GET

    return hook


def sso_completion_guard(
    pages: Pages, policy: RedirectUrlPolicy, whitelist: ClientWhitelist
) -> SsoCompletionGuard:
    """Checks the client URL of every SSO login Synapse completes here (also
    SAML's ``RelayState`` and CAS's ticket ``redirectUrl``) as
    ``hook_sso_redirect`` checks ``redirectUrl``."""

    def guard(request: SynapseRequest, client_redirect_url: str) -> bool:
        try:
            check_redirect_url(policy, client_redirect_url, whitelist)
        except PageError as e:
            pages.show(request, e)
            return False
        return True

    return guard


def rewrite_redirect_url(request: SynapseRequest, homeserver: str) -> None:
    """Give ``redirectUrl`` exactly one ``homeserver`` parameter, in args and URI.

    A missing, undecodable or scheme-less ``redirectUrl`` is left alone, so
    Synapse answers it as it would without the module.
    """
    args: dict[bytes, list[bytes]] = request.args
    values = args.get(_REDIRECT_URL)
    if not values:
        return
    try:
        new_url = set_homeserver_param(values[0].decode("utf-8"), homeserver)
    except UnicodeDecodeError:
        return
    if new_url is None:
        return
    encoded = new_url.encode("utf-8")
    args[_REDIRECT_URL] = [encoded]
    path, _, query = request.uri.partition(b"?")
    segments = [s for s in query.split(b"&") if s and _param_name(s) != _REDIRECT_URL]
    segments.append(_REDIRECT_URL + b"=" + quote_from_bytes(encoded, safe="").encode())
    request.uri = path + b"?" + b"&".join(segments)


def _param_name(segment: bytes) -> bytes:
    return unquote_to_bytes(segment.partition(b"=")[0].replace(b"+", b" "))
