"""Every use of Synapse internals beyond the public ModuleApi lives here.

Each function checks the shape of what it touches and raises
``IncompatibleSynapseError`` (naming the Synapse version) when Synapse changed,
so an unsupported Synapse refuses to start instead of misbehaving.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

import attr
import synapse
from synapse.api.auth.base import BaseAuth
from synapse.api.errors import (
    LimitExceededError,
    SynapseError,
    UnrecognizedRequestError,
)
from synapse.api.ratelimiting import Ratelimiter
from synapse.appservice import ApplicationService
from synapse.handlers.oidc import JinjaOidcMappingProvider
from synapse.handlers.saml import DefaultSamlMappingProvider, SamlConfig
from synapse.http.server import StaticResource, UnrecognizedRequestResource
from synapse.http.site import SynapseRequest
from synapse.module_api import LoggingTransaction, ModuleApi, UserID
from synapse.rest import ClientRestResource
from synapse.rest.client.login import SsoRedirectServlet
from synapse.storage.engines import PostgresEngine
from synapse.util import SYNAPSE_VERSION
from twisted.web.resource import Resource
from twisted.web.server import Request

from synapse_login_redirect.supported import SUPPORTED_SYNAPSE

__all__ = [
    "LimitExceededError",  # what Synapse's rate limiters raise
    "JinjaOidcMappingProvider",  # Synapse's default OIDC mapping provider
    "DefaultSamlMappingProvider",  # and SAML's, with its config class
    "SamlConfig",
    # Synapse's "nothing here" resource (404 M_UNRECOGNIZED): the module's
    # resources answer unknown paths with it, as Synapse does without them.
    "UnrecognizedRequestResource",
    "SynapseRequest",  # the request type of Synapse's HTTP resources
]

LOGIN_SERVLET = "LoginRestServlet"
SSO_REDIRECT_SERVLET = SsoRedirectServlet.__name__
# Every path of Synapse's SSO and CAS redirect servlet, for every API version.
SSO_REDIRECT_PATTERNS = tuple(SsoRedirectServlet.PATTERNS)
# Synapse's fallback login page, /_matrix/static/client/login/, and its script,
# from Synapse's package.
FALLBACK_LOGIN_PAGE = "static/client/login/index.html"
FALLBACK_LOGIN_SCRIPT = "static/client/login/js/login.js"

RouteCallback = Callable[..., Awaitable[Any]]
RouteHook = Callable[[RouteCallback], RouteCallback]


def is_postgres(txn: LoggingTransaction) -> bool:
    """Whether this database transaction runs on PostgreSQL (else sqlite)."""
    return isinstance(txn.database_engine, PostgresEngine)


RouteKey = tuple[str, bytes]  # (servlet class name, HTTP method)

_HOOKED = "_synapse_login_redirect_hooked"
# A query argument whose value is kept out of the logs, as Synapse writes it.
REDACTED = b"=<redacted>"
_QUERY_SEPARATORS = re.compile(rb"([&;])")


# Every member of ModuleApi the package uses (a unit test keeps this complete).
MODULE_API_MEMBERS = (
    "check_user_exists",
    "delayed_background_call",
    "get_current_time_msec",  # Synapse 1.125
    "get_qualified_user_id",
    "is_mine",
    "looping_background_call",
    "public_baseurl",
    "read_templates",
    "register_password_auth_provider_callbacks",
    "register_web_resource",
    "run_as_background_process",  # a method since Synapse 1.136
    "run_db_interaction",
    "server_name",
    "should_run_background_tasks",  # Synapse 1.89
    "sleep",
    "worker_app",
)


class IncompatibleSynapseError(RuntimeError):
    """Synapse's internals are not what this module was built against."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"synapse-login-redirect does not support Synapse {SYNAPSE_VERSION}: "
            f"{what}. This release of the module is for Synapse "
            f"{SUPPORTED_SYNAPSE} and newer: install a release of the module "
            "that supports this Synapse, or remove it from 'modules:'."
        )


def release(version: str) -> tuple[int, int, int]:
    """The (major, minor, patch) a Synapse version string starts with."""
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if match is None:
        raise IncompatibleSynapseError(f"cannot read the version {version!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def check_synapse_support(api: ModuleApi) -> None:
    """Refuse to start on a Synapse that lacks anything the module needs.

    Run at start-up, so an unsupported Synapse fails there, naming its
    version, instead of at the first login that needs the missing piece.
    """
    if release(SYNAPSE_VERSION) < release(SUPPORTED_SYNAPSE):
        raise IncompatibleSynapseError(f"it is older than {SUPPORTED_SYNAPSE}")
    for name in MODULE_API_MEMBERS:
        if getattr(ModuleApi, name, None) is None:
            raise IncompatibleSynapseError(f"ModuleApi has no {name}")
    hs = api._hs
    for what, owner, name in (
        ("the auth handler", hs.get_auth_handler(), "consume_login_token"),
        ("the main datastore", hs.get_datastores().main, "get_external_ids_by_user"),
        ("the main datastore", hs.get_datastores().main, "get_app_service_by_token"),
        ("BaseAuth", BaseAuth, "get_access_token_from_request"),
    ):
        if not callable(getattr(owner, name, None)):
            raise IncompatibleSynapseError(f"{what} has no {name}")
    for section, name in (
        ("server", "listeners"),
        ("worker", "worker_listeners"),
        ("sso", "sso_client_whitelist"),
        ("ratelimiting", "rc_login_address"),
    ):
        if not hasattr(getattr(hs.config, section, None), name):
            raise IncompatibleSynapseError(f"config.{section}.{name} is missing")
    limiter = _parameters(Ratelimiter.__init__, "Ratelimiter")
    if not {"store", "clock", "cfg"} <= limiter.keys():
        raise IncompatibleSynapseError("Ratelimiter takes no store, clock and cfg")


def install_route_hooks(
    client_resource: Resource, hooks: Mapping[RouteKey, RouteHook]
) -> set[RouteKey]:
    """Wrap the callbacks of Synapse's client API routes named in ``hooks``.

    ``client_resource`` is one listener's ``ClientRestResource`` (a
    ``JsonResource``). Returns the hooks installed. Synapse keeps rendering
    the responses, errors included, as it always does.
    """
    routes = getattr(client_resource, "_routes", None)
    if not isinstance(routes, dict):
        raise IncompatibleSynapseError(
            f"the client API resource ({type(client_resource).__name__}) "
            "has no route table"
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


def add_route(
    client_resource: Resource, key: RouteKey, patterns: Any, callback: RouteCallback
) -> None:
    """Serve ``patterns`` in one listener's client API, as a servlet would."""
    register_paths = getattr(client_resource, "register_paths", None)
    if not callable(register_paths):
        raise IncompatibleSynapseError("the client API resource has no register_paths")
    classname, method = key
    register_paths(method.decode(), patterns, callback, classname)


async def unrecognized_route(request: SynapseRequest, **kwargs: Any) -> Any:
    """What Synapse answers where it serves no such route: 404 M_UNRECOGNIZED."""
    raise UnrecognizedRequestError(code=404)


# Called with each client API resource Synapse builds for a listener.
ClientResourceListener = Callable[[Resource], None]
_client_resource_listeners: list[tuple[object, ClientResourceListener]] = []


def on_client_api_resources(api: ModuleApi, listener: ClientResourceListener) -> None:
    """Call ``listener`` with every client API resource this homeserver builds.

    Synapse builds one ``ClientRestResource`` per HTTP listener that serves
    ``client`` (and a media-only one for ``media`` listeners on workers),
    after modules are loaded. Hooking each one as it is built keeps every
    listener's tree exactly as Synapse made it.
    """
    register = ClientRestResource.__dict__.get("register_servlets")
    if not isinstance(register, staticmethod):
        raise IncompatibleSynapseError(
            "ClientRestResource.register_servlets is not a static method"
        )
    if not _client_resource_listeners:
        original = register.__func__

        def register_servlets(
            client_resource: Resource, hs: object, *args: Any, **kwargs: Any
        ) -> None:
            original(client_resource, hs, *args, **kwargs)
            for owner, listen in _client_resource_listeners:
                if owner is hs:
                    listen(client_resource)

        ClientRestResource.register_servlets = staticmethod(register_servlets)  # type: ignore[method-assign,assignment]
    _client_resource_listeners.append((api._hs, listener))


# Renders one of Synapse's static files differently.
# Given the request and Synapse's own rendering of the file, answers a GET.
StaticRenderer = Callable[[Request, Callable[[], Any]], Any]
_static_overrides: dict[Path, StaticRenderer] = {}


def serve_static_file(relative_path: str, render: StaticRenderer) -> None:
    """Answer GETs of Synapse's static file ``relative_path`` with ``render``.

    Synapse's ``StaticResource`` serves ``/_matrix/static`` on the listeners
    that name ``client`` or ``static``, so the file changes exactly there.
    """
    path = (Path(synapse.__file__).resolve().parent / relative_path).resolve()
    if not path.is_file():
        raise IncompatibleSynapseError(f"Synapse has no static file {relative_path}")
    original = StaticResource.__dict__.get("render_GET")
    if not callable(original):
        raise IncompatibleSynapseError("StaticResource has no render_GET")
    if not _static_overrides:

        def render_GET(self: StaticResource, request: Request) -> Any:  # noqa: N802
            override = _static_overrides.get(Path(self.path).resolve())
            if override is None:
                return original(self, request)
            return override(request, lambda: original(self, request))

        StaticResource.render_GET = render_GET  # type: ignore[method-assign]
    _static_overrides[path] = render


# Judges the client URL of an SSO login Synapse is about to complete: True to
# go on; else it has answered the request itself (an error page).
SsoCompletionGuard = Callable[[SynapseRequest, str], bool]


def guard_sso_completions(api: ModuleApi, guard: SsoCompletionGuard) -> None:
    """Check every SSO login this homeserver completes (OIDC, SAML, CAS).

    The client URL reaches Synapse's ``complete_sso_login_request`` from the
    SSO redirect the module checked, but also from where the module never
    looks: SAML's ``RelayState`` comes back from the IdP as the browser sent
    it, and CAS's ticket URL carries its own ``redirectUrl``.
    """
    handler = api._hs.get_sso_handler()
    original = getattr(handler, "complete_sso_login_request", None)
    parameters = list(inspect.signature(original).parameters) if original else []
    if parameters[2:4] != ["request", "client_redirect_url"]:
        raise IncompatibleSynapseError(
            "SsoHandler.complete_sso_login_request takes no (request, "
            "client_redirect_url) as its third and fourth arguments"
        )

    async def complete_sso_login_request(
        auth_provider_id: str,
        remote_user_id: str,
        request: SynapseRequest,
        client_redirect_url: str,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if not guard(request, client_redirect_url):
            return
        assert original is not None
        await original(
            auth_provider_id,
            remote_user_id,
            request,
            client_redirect_url,
            *args,
            **kwargs,
        )

    handler.complete_sso_login_request = complete_sso_login_request  # type: ignore[method-assign]


def client_site_tags(api: ModuleApi) -> frozenset[str]:
    """The site tags of this process's HTTP listeners that serve ``client``
    (a listener's ``tag``, else its port), as Synapse names them per request.

    Only this process's own listeners count: a worker's are its
    ``worker_listeners``; ``listeners`` in the shared file are main's.
    """
    config = api._hs.config
    if api.worker_app is None:
        listeners = config.server.listeners
    else:
        listeners = config.worker.worker_listeners
    return frozenset(
        listener.get_site_tag()
        for listener in listeners
        if listener.http_options is not None
        and any("client" in res.names for res in listener.http_options.resources)
    )


def site_tag_of(request: Request) -> str | None:
    """The site tag of the listener ``request`` came in on."""
    tag = getattr(getattr(request, "synapse_site", None), "site_tag", None)
    return tag if isinstance(tag, str) else None


@attr.s(frozen=True, slots=True, auto_attribs=True)
class AppserviceView:
    """What the module needs to know of a registered appservice."""

    sender: str
    msc4190_device_management: bool
    is_interested_in_user: Callable[[str], bool]


def _parameters(function: Any, what: str) -> Mapping[str, inspect.Parameter]:
    try:
        return inspect.signature(function).parameters
    except (TypeError, ValueError):
        raise IncompatibleSynapseError(f"{what} has no readable signature") from None


def check_appservice_support() -> None:
    """Fail at start-up if Synapse's appservice objects changed shape."""
    if not callable(getattr(ApplicationService, "is_interested_in_user", None)):
        raise IncompatibleSynapseError(
            "ApplicationService has no is_interested_in_user"
        )
    init = _parameters(ApplicationService.__init__, "ApplicationService")
    if "msc4190_device_management" not in init:
        raise IncompatibleSynapseError(
            "ApplicationService has no msc4190_device_management"
        )
    # A str before Synapse 1.135; the annotation is a string under PEP 563.
    sender = init["sender"].annotation if "sender" in init else None
    if sender is not UserID and sender != UserID.__name__:
        raise IncompatibleSynapseError("ApplicationService.sender is not a UserID")


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


@attr.s(frozen=True, slots=True, auto_attribs=True)
class TokenLogin:
    """Whom a login token was minted for, and at which IdP they signed in."""

    user_id: str
    idp_id: str | None  # None: not minted by an SSO sign-in


def hide_query_args_from_log(request: Request, names: Collection[str]) -> None:
    """Blank the values of these query arguments in Synapse's logs of ``request``.

    Synapse logs ``request.uri`` (through ``SynapseRequest.get_redacted_uri``,
    which blanks only ``access_token`` and ``client_secret``) when it starts
    rendering a request and when the request finishes. Twisted has already
    parsed the arguments into ``request.args``, so rewriting the URI changes
    nothing else; call it before rendering, while the resource tree is walked.
    Arguments are split and their names decoded as Twisted's ``parse_qs``
    does (``&`` and ``;``, ``+``, ``login%54oken``).
    """
    uri = request.uri
    if not isinstance(uri, bytes):
        raise IncompatibleSynapseError("request.uri is not bytes")
    path, separator, query = uri.partition(b"?")
    if not separator:
        return
    hidden = {name.encode("utf-8") for name in names}
    parts = _QUERY_SEPARATORS.split(query)  # arguments, with separators between
    for i in range(0, len(parts), 2):
        raw_name, equals, _ = parts[i].partition(b"=")
        name = unquote_to_bytes(raw_name.replace(b"+", b" "))
        if equals and name in hidden:
            parts[i] = name + REDACTED
    request.uri = path + b"?" + b"".join(parts)


async def consume_login_token(api: ModuleApi, token: str) -> TokenLogin | None:
    """Use up a login token minted here; None if it is not valid."""
    handler = api._hs.get_auth_handler()
    try:
        result = await handler.consume_login_token(token)
    except SynapseError:
        return None
    idp_id = result.auth_provider_id
    return TokenLogin(str(result.user_id), None if idp_id is None else str(idp_id))


def oidc_idp_id(api: ModuleApi, mapping_config: object) -> str:
    """The idp id of the ``oidc_providers`` entry whose user mapping provider
    was given ``mapping_config`` (Synapse parses it once per entry)."""
    providers = getattr(api._hs.config.oidc, "oidc_providers", None)
    if providers is None:
        raise IncompatibleSynapseError("config.oidc has no oidc_providers")
    idp_ids = [
        str(provider.idp_id)
        for provider in providers
        if getattr(provider, "user_mapping_provider_config", None) is mapping_config
    ]
    if len(idp_ids) != 1:
        raise IncompatibleSynapseError(
            "an OIDC user mapping provider's config is not that of exactly one "
            f"entry of oidc_providers (found {len(idp_ids)})"
        )
    return idp_ids[0]


def saml_idp_id(api: ModuleApi) -> str:
    """The idp id Synapse records SAML sign-ins under."""
    idp_id = getattr(api._hs.get_saml_handler(), "idp_id", None)
    if not isinstance(idp_id, str):
        raise IncompatibleSynapseError("the SAML handler has no idp_id")
    return idp_id


async def external_ids_of(api: ModuleApi, user_id: str) -> list[tuple[str, str]]:
    """The (SSO provider id, remote user id) pairs linked to a local user."""
    store = api._hs.get_datastores().main
    return [(str(p), str(e)) for p, e in await store.get_external_ids_by_user(user_id)]


class AddressLimiter(Protocol):
    """Checks one client address against Synapse's ``rc_login.address`` limit,
    raising its LimitExceededError (429 M_LIMIT_EXCEEDED, retry_after_ms);
    ``update=False`` checks without counting an attempt."""

    async def __call__(self, address: str, *, update: bool = True) -> None: ...


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

    async def check(address: str, *, update: bool = True) -> None:
        await limiter.ratelimit(None, address, update=update)

    return check
