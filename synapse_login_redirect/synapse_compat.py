"""Every use of Synapse internals beyond the public ModuleApi lives here.

Each function checks the shape of what it touches and raises
``IncompatibleSynapseError`` (naming the Synapse version) when Synapse changed,
so an unsupported Synapse refuses to start instead of misbehaving.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import attr
import synapse
from synapse.api.auth.base import BaseAuth
from synapse.api.errors import SynapseError
from synapse.api.ratelimiting import Ratelimiter
from synapse.appservice import ApplicationService
from synapse.handlers.oidc import JinjaOidcMappingProvider
from synapse.handlers.saml import DefaultSamlMappingProvider, SamlConfig
from synapse.http.server import UnrecognizedRequestResource
from synapse.http.site import SynapseRequest
from synapse.module_api import ModuleApi
from synapse.util import SYNAPSE_VERSION
from twisted.web.resource import EncodingResourceWrapper, Resource

__all__ = [
    "JinjaOidcMappingProvider",  # Synapse's default OIDC mapping provider
    "DefaultSamlMappingProvider",  # and SAML's, with its config class
    "SamlConfig",
]

# Synapse's own "nothing here" resource: the gateway subclasses it so that
# unknown paths under /_matrix answer exactly as they do without the module.
GatewayBase = UnrecognizedRequestResource

LOGIN_SERVLET = "LoginRestServlet"
SSO_REDIRECT_SERVLET = "SsoRedirectServlet"
# Served at /_matrix/static/client/login/js/login.js, from Synapse's package.
FALLBACK_LOGIN_SCRIPT = "static/client/login/js/login.js"

RouteCallback = Callable[..., Awaitable[Any]]
RouteHook = Callable[[RouteCallback], RouteCallback]
RouteKey = tuple[str, bytes]  # (servlet class name, HTTP method)

_HOOKED = "_synapse_login_redirect_hooked"


class IncompatibleSynapseError(RuntimeError):
    """Synapse's internals are not what this module was built against."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"synapse-login-redirect does not support Synapse {SYNAPSE_VERSION}: "
            f"{what}. Install a release of the module that supports it, or "
            "remove it from 'modules:'."
        )


def install_route_hooks(
    client_resource: Resource, hooks: Mapping[RouteKey, RouteHook]
) -> set[RouteKey]:
    """Wrap the callbacks of Synapse's client API routes named in ``hooks``.

    ``client_resource`` is what Synapse mounts at ``/_matrix/client`` (a
    ``JsonResource``, possibly gzip-wrapped). Returns the hooks installed.
    Synapse keeps rendering the responses, errors included, as it always does.
    """
    resource: object = client_resource
    if isinstance(resource, EncodingResourceWrapper):
        resource = getattr(resource, "original", None)
    routes = getattr(resource, "_routes", None)
    if not isinstance(routes, dict):
        raise IncompatibleSynapseError(
            f"the client API resource ({type(resource).__name__}) has no route table"
        )
    installed: set[RouteKey] = set()
    for methods in routes.values():
        if not isinstance(methods, dict):
            raise IncompatibleSynapseError("a client API route is not a method map")
        for method, entry in list(methods.items()):
            classname = getattr(entry, "servlet_classname", None)
            callback = getattr(entry, "callback", None)
            if not isinstance(classname, str) or not callable(callback):
                raise IncompatibleSynapseError(
                    "a client API route has no servlet name or callback"
                )
            hook = hooks.get((classname, method))
            if hook is None:
                continue
            installed.add((classname, method))
            if getattr(callback, _HOOKED, False):
                continue
            wrapped = hook(callback)
            setattr(wrapped, _HOOKED, True)
            methods[method] = attr.evolve(entry, callback=wrapped)
    return installed


def serves_client_api(api: ModuleApi) -> bool:
    """Whether this Synapse process has an HTTP listener with the client API."""
    config = api._hs.config
    # On a worker, server.listeners are main's (from the shared config file).
    on_worker = api.worker_app is not None
    listeners = config.worker.worker_listeners if on_worker else config.server.listeners
    return any(
        "client" in res.names
        for listener in listeners
        if listener.http_options is not None
        for res in listener.http_options.resources
    )


@attr.s(frozen=True, slots=True, auto_attribs=True)
class AppserviceView:
    """What the module needs to know of a registered appservice."""

    sender: str
    msc4190_device_management: bool
    is_interested_in_user: Callable[[str], bool]


def check_appservice_support() -> None:
    """Fail at start-up if Synapse's appservice objects changed shape."""
    if not callable(getattr(ApplicationService, "is_interested_in_user", None)):
        raise IncompatibleSynapseError(
            "ApplicationService has no is_interested_in_user"
        )
    init = inspect.signature(ApplicationService.__init__).parameters
    if "msc4190_device_management" not in init:
        raise IncompatibleSynapseError(
            "ApplicationService has no msc4190_device_management"
        )


def appservice_of_request(
    api: ModuleApi, request: SynapseRequest
) -> AppserviceView | None:
    """The appservice whose as_token the request carries, if any.

    The token is read as for every authenticated endpoint (``Authorization:
    Bearer`` or ``?access_token=``); MissingClientTokenError when there is none.
    Unlike ``ModuleApi.get_user_by_req`` this leaves the request's requester
    unset, for Synapse's own login code to set.
    """
    token = BaseAuth.get_access_token_from_request(request)
    service = api._hs.get_datastores().main.get_app_service_by_token(token)
    if service is None:
        return None
    return AppserviceView(
        sender=service.sender.to_string(),
        msc4190_device_management=service.msc4190_device_management,
        is_interested_in_user=service.is_interested_in_user,
    )


def synapse_version() -> str:
    return SYNAPSE_VERSION


def sso_client_whitelist(api: ModuleApi) -> tuple[str, ...]:
    """Synapse's ``sso.client_whitelist`` (with its own fallback login page)."""
    whitelist = api._hs.config.sso.sso_client_whitelist
    if not isinstance(whitelist, list):
        raise IncompatibleSynapseError("config.sso.sso_client_whitelist is not a list")
    return tuple(str(prefix) for prefix in whitelist)


def fallback_login_script() -> str:
    """The JavaScript of Synapse's fallback login page (``/_matrix/static/client/login/``)."""
    path = Path(synapse.__file__).resolve().parent / FALLBACK_LOGIN_SCRIPT
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise IncompatibleSynapseError(
            f"the fallback login page's script {FALLBACK_LOGIN_SCRIPT} cannot be read ({e})"
        ) from None


async def consume_login_token(api: ModuleApi, token: str) -> str | None:
    """The user a login token minted here was for, using it up; None if invalid."""
    handler = api._hs.get_auth_handler()
    try:
        result = await handler.consume_login_token(token)
    except SynapseError:
        return None
    return str(result.user_id)


async def external_ids_of(api: ModuleApi, user_id: str) -> list[tuple[str, str]]:
    """The (SSO provider id, remote user id) pairs linked to a local user."""
    store = api._hs.get_datastores().main
    return [(str(p), str(e)) for p, e in await store.get_external_ids_by_user(user_id)]


# Checks one client address against Synapse's ``rc_login.address`` limit,
# raising its LimitExceededError (429 M_LIMIT_EXCEEDED, retry_after_ms).
AddressLimiter = Callable[[str], Awaitable[None]]


def login_address_limiter(api: ModuleApi) -> AddressLimiter:
    """Synapse's per-address login rate limit, for logins the module answers.

    A limiter of its own, configured like ``LoginRestServlet``'s, so a login
    the portal routes counts as one login attempt, as it would at Synapse.
    """
    hs = api._hs
    limiter = Ratelimiter(
        store=hs.get_datastores().main,
        clock=hs.get_clock(),
        cfg=hs.config.ratelimiting.rc_login_address,
    )

    async def check(address: str) -> None:
        await limiter.ratelimit(None, address)

    return check
