"""The module's ``config:`` block: ``parse_config`` builds ``LoginRedirectConfig``.

Every mistake raises a ``ConfigError`` whose ``path`` is the key path inside
the module's ``config:`` block, and whose message says what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attr
from synapse.module_api.errors import ConfigError

from synapse_login_redirect.config.appservice import parse_appservice_login
from synapse_login_redirect.config.fields import boolean, checked_mapping, optional_url
from synapse_login_redirect.config.portal import (
    PortalConfig,
    Target,
    parse_portal,
    parse_targets,
)
from synapse_login_redirect.target.appservice_login import AppserviceLoginConfig
from synapse_login_redirect.web.redirect_policy import (
    RedirectUrlPolicy,
    RefusedUrl,
    UrlPrefix,
)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class LoginRedirectConfig:
    """The whole ``config:`` block of the module."""

    # The client-server URL advertised for this homeserver; None means
    # Synapse's public_baseurl.
    base_url: str | None = None
    identity_server: str | None = None
    # MSC1730's first draft: also put ``base_cs_url`` in login responses.
    base_cs_url: bool = False
    # MSC1731: add ``homeserver`` to the SSO redirect back to the client.
    sso_homeserver_param: bool = True
    targets: Mapping[str, Target] = attr.Factory(dict)
    appservice_login: AppserviceLoginConfig = AppserviceLoginConfig()
    # None: this homeserver is only a target.
    portal: PortalConfig | None = None
    redirect_url: RedirectUrlPolicy = RedirectUrlPolicy()


_TOP_LEVEL_KEYS = (
    "base_url",
    "identity_server",
    "base_cs_url",
    "sso_homeserver_param",
    "targets",
    "appservice_login",
    "portal",
    "redirect_url",
)
_REDIRECT_URL_KEYS = ("require_https", "allowed_prefixes")


def parse_config(raw: Any) -> LoginRedirectConfig:
    """Build the configuration from the module's ``config:`` block."""
    if raw is None:
        raw = {}
    top = checked_mapping(raw, (), _TOP_LEVEL_KEYS)
    targets = parse_targets(top.get("targets"), ("targets",))
    return LoginRedirectConfig(
        base_url=optional_url(top, "base_url", ()),
        identity_server=optional_url(top, "identity_server", ()),
        base_cs_url=boolean(top, "base_cs_url", (), default=False),
        sso_homeserver_param=boolean(top, "sso_homeserver_param", (), default=True),
        targets=targets,
        appservice_login=parse_appservice_login(
            top.get("appservice_login"), ("appservice_login",)
        ),
        portal=parse_portal(top.get("portal"), ("portal",), targets),
        redirect_url=_redirect_url(top.get("redirect_url"), ("redirect_url",)),
    )


def _redirect_url(raw: Any, path: tuple[str, ...]) -> RedirectUrlPolicy:
    if raw is None:
        return RedirectUrlPolicy()
    settings = checked_mapping(raw, path, _REDIRECT_URL_KEYS)
    prefixes = settings.get("allowed_prefixes", [])
    if not isinstance(prefixes, list):
        raise ConfigError("must be a list of URL prefixes", (*path, "allowed_prefixes"))
    return RedirectUrlPolicy(
        require_https=boolean(settings, "require_https", path, default=False),
        allowed_prefixes=tuple(
            _url_prefix(p, (*path, "allowed_prefixes", str(i)))
            for i, p in enumerate(prefixes)
        ),
    )


def _url_prefix(raw: Any, path: tuple[str, ...]) -> UrlPrefix:
    example = (
        "a prefix names an origin and a path, e.g. https://app.element.io/, "
        "http://127.0.0.1: (any port) or element://connect"
    )
    if not isinstance(raw, str):
        raise ConfigError(f"must be a string: {example}", path)
    try:
        return UrlPrefix.parse(raw)
    except RefusedUrl as e:
        raise ConfigError(f"{raw!r} is refused: {e}; {example}", path) from None
