"""The ``targets`` and ``portal`` config: where logins go, and how."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal, get_args

import attr
from synapse.module_api.errors import ConfigError

from synapse_login_redirect.config.fields import (
    boolean,
    checked_mapping,
    one_of,
    optional_url,
    seconds,
    text,
)
from synapse_login_redirect.config.routing import parse_routing
from synapse_login_redirect.gateway.limits import MAX_DEPARTMENT_BYTES
from synapse_login_redirect.routing.directory import unknown_target
from synapse_login_redirect.routing.engine import SELF, RoutingEngine
from synapse_login_redirect.web.urls import host_of

_TARGET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
RESERVED_TARGET_NAMES = frozenset({SELF})
# How the portal hands a login on to a target: a 307, or proxying.
Mode = Literal["redirect", "proxy"]
MODES: tuple[Mode, ...] = get_args(Mode)
MODE_REDIRECT: Final = "redirect"
DEFAULT_REALM_PAGE_NAME = "Choose your organisation"
DEFAULT_MAX_SESSIONS = 10000
DEFAULT_SESSION_LIFETIME = 600.0
DEFAULT_TOKEN_LIFETIME = 120.0
DEFAULT_PROXY_TIMEOUT = 10.0
DEFAULT_HEALTH_CHECK_INTERVAL = 30.0
DEFAULT_UNPLACED_MESSAGE = (
    "This login service cannot tell which homeserver your account is on. "
    "Please log in at your own homeserver, or ask your administrator."
)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Target:
    """A homeserver that users can be sent to after logging in."""

    name: str
    base_url: str
    identity_server: str | None = None
    mode: Mode = MODE_REDIRECT
    # How error messages name the target to users; defaults to its host.
    public_name: str = ""
    # Where the portal posts logins (proxy mode, and login tokens) and health
    # checks, e.g. an internal listener; clients are only told base_url.
    proxy_url: str = attr.Factory(lambda self: self.base_url, takes_self=True)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PortalSsoConfig:
    """How the portal finds a user's homeserver before single sign-on."""

    # Choices on the home-realm page: label -> target name.
    departments: Mapping[str, str] = attr.Factory(dict)
    # A field for an email address or Matrix ID, routed by the rules.
    ask_user: bool = True
    # Seconds a sign-in started at the portal may take to come back.
    session_lifetime: float = DEFAULT_SESSION_LIFETIME
    # Seconds the portal remembers which target minted a login token.
    token_lifetime: float = DEFAULT_TOKEN_LIFETIME
    # The portal's own IdPs (Synapse idp ids) whose sign-in comes first, with
    # routing on the attributes or claims they give, mapped to the idp id the
    # targets use for the same IdP.
    portal_idps: Mapping[str, str] = attr.Factory(dict)
    # How GET /login names the home-realm page among the identity providers.
    realm_page_name: str = DEFAULT_REALM_PAGE_NAME
    # Sign-ins in progress at once; beyond it new ones are refused.
    max_sessions: int = DEFAULT_MAX_SESSIONS


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PortalConfig:
    """The portal role: which target each login goes to, and how."""

    engine: RoutingEngine
    unplaced_message: str = DEFAULT_UNPLACED_MESSAGE
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT
    health_check_interval: float = DEFAULT_HEALTH_CHECK_INTERVAL
    # None: single sign-on at the portal stays on the portal itself.
    sso: PortalSsoConfig | None = None


_SSO_KEYS = (
    "departments",
    "ask_user",
    "session_lifetime",
    "token_lifetime",
    "portal_idps",
    "realm_page_name",
    "max_sessions",
)
_TARGET_KEYS = ("base_url", "proxy_url", "identity_server", "mode", "public_name")
_PORTAL_KEYS = (
    "rules",
    "pool",
    "unplaced_message",
    "proxy_timeout",
    "health_check_interval",
    "sso",
)


def _portal_sso(
    raw: Any, path: tuple[str, ...], targets: Mapping[str, Target]
) -> PortalSsoConfig:
    settings = checked_mapping(raw, path, _SSO_KEYS)
    departments = settings.get("departments", {})
    if not isinstance(departments, Mapping):
        raise ConfigError(
            "must be a mapping of the label users pick to a target name, "
            "e.g. {Engineering: eng}",
            (*path, "departments"),
        )
    for label, target in departments.items():
        if len(str(label).encode("utf-8")) > MAX_DEPARTMENT_BYTES:
            raise ConfigError(
                f"a department label is at most {MAX_DEPARTMENT_BYTES} bytes",
                (*path, "departments", str(label)),
            )
        if target not in targets:
            raise ConfigError(
                f"{unknown_target(target, targets)} (single sign-on cannot stay "
                "on the portal)",
                (*path, "departments", str(label)),
            )
    portal_idps = settings.get("portal_idps", {})
    if not isinstance(portal_idps, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v
        for k, v in portal_idps.items()
    ):
        raise ConfigError(
            "must be a mapping of the portal's own idp id to the idp id the "
            "targets use for the same IdP, e.g. {oidc-corp: oidc-corp}",
            (*path, "portal_idps"),
        )
    ask_user = boolean(settings, "ask_user", path, default=True)
    max_sessions = settings.get("max_sessions", DEFAULT_MAX_SESSIONS)
    if (
        isinstance(max_sessions, bool)
        or not isinstance(max_sessions, int)
        or max_sessions < 1
    ):
        raise ConfigError(
            f"must be a number of sign-ins >= 1, not {max_sessions!r}",
            (*path, "max_sessions"),
        )
    if not departments and not ask_user:
        raise ConfigError(
            "the home-realm page needs departments, ask_user: true, or both", path
        )
    return PortalSsoConfig(
        departments={str(k): v for k, v in departments.items()},
        ask_user=ask_user,
        session_lifetime=seconds(
            settings, "session_lifetime", path, DEFAULT_SESSION_LIFETIME, zero=False
        ),
        token_lifetime=seconds(
            settings, "token_lifetime", path, DEFAULT_TOKEN_LIFETIME, zero=False
        ),
        portal_idps=dict(portal_idps),
        realm_page_name=text(
            settings, "realm_page_name", path, DEFAULT_REALM_PAGE_NAME
        ),
        max_sessions=max_sessions,
    )


def parse_portal(
    raw: Any, path: tuple[str, ...], targets: Mapping[str, Target]
) -> PortalConfig | None:
    """The ``portal`` block; None when this homeserver is not a portal."""
    if raw is None:
        return None
    settings = checked_mapping(raw, path, _PORTAL_KEYS)
    routing = {k: settings[k] for k in ("rules", "pool") if k in settings}
    engine = parse_routing(routing, targets, path)
    message = settings.get("unplaced_message", DEFAULT_UNPLACED_MESSAGE)
    if not isinstance(message, str) or not message.strip():
        raise ConfigError(
            "must be a non-empty string: the message users get when no rule "
            "and no pool places them",
            (*path, "unplaced_message"),
        )
    sso = settings.get("sso")
    return PortalConfig(
        engine=engine,
        unplaced_message=message,
        proxy_timeout=seconds(
            settings, "proxy_timeout", path, DEFAULT_PROXY_TIMEOUT, zero=False
        ),
        health_check_interval=seconds(
            settings,
            "health_check_interval",
            path,
            DEFAULT_HEALTH_CHECK_INTERVAL,
            zero=True,
        ),
        sso=None if sso is None else _portal_sso(sso, (*path, "sso"), targets),
    )


def parse_targets(raw: Any, path: tuple[str, ...]) -> dict[str, Target]:
    """The ``targets`` block: target name to ``Target``."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a mapping of target name to target settings", path)
    targets = {}
    for name, value in raw.items():
        here = (*path, str(name))
        if not isinstance(name, str) or not _TARGET_NAME.match(name):
            raise ConfigError(
                f"target name {name!r} is not allowed: use 1 to 64 of a-z, 0-9, "
                "'_', '.' and '-', starting with a letter or digit",
                here,
            )
        if name in RESERVED_TARGET_NAMES:
            raise ConfigError(
                f"target name {name!r} is reserved; "
                f"reserved names are: {', '.join(sorted(RESERVED_TARGET_NAMES))}",
                here,
            )
        settings = checked_mapping(value, here, _TARGET_KEYS)
        base_url = optional_url(settings, "base_url", here)
        if base_url is None:
            raise ConfigError(
                "is required: the client-server URL of this homeserver, "
                "e.g. https://matrix.eng.example",
                (*here, "base_url"),
            )
        mode = one_of(settings, "mode", here, MODES, MODE_REDIRECT)
        public_name = settings.get("public_name", host_of(base_url))
        if not isinstance(public_name, str) or not public_name.strip():
            raise ConfigError(
                "must be a non-empty string: how error messages name this "
                "homeserver to users, e.g. Engineering",
                (*here, "public_name"),
            )
        targets[name] = Target(
            name=name,
            base_url=base_url,
            identity_server=optional_url(settings, "identity_server", here),
            mode=mode,
            public_name=public_name,
            proxy_url=optional_url(settings, "proxy_url", here) or base_url,
        )
    return targets
