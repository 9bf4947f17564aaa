"""The ``appservice_login`` config (MSC2778)."""

from __future__ import annotations

from typing import Any

from synapse.module_api.errors import ConfigError

from synapse_login_redirect.config.fields import checked_mapping, one_of
from synapse_login_redirect.target.appservice_login import (
    APPSERVICE_TYPES,
    ERROR_STYLES,
    ERRORS_MSC2778,
    AppserviceLoginConfig,
)

_APPSERVICE_LOGIN_KEYS = ("types", "errors")


def parse_appservice_login(raw: Any, path: tuple[str, ...]) -> AppserviceLoginConfig:
    """The ``appservice_login`` block."""
    if raw is None:
        return AppserviceLoginConfig()
    settings = checked_mapping(raw, path, _APPSERVICE_LOGIN_KEYS)
    types = settings.get("types", list(APPSERVICE_TYPES))
    if not isinstance(types, list) or not all(t in APPSERVICE_TYPES for t in types):
        raise ConfigError(
            f"must be a list of login types from: {', '.join(APPSERVICE_TYPES)} "
            "(an empty list leaves appservice login to Synapse)",
            (*path, "types"),
        )
    errors = one_of(settings, "errors", path, ERROR_STYLES, ERRORS_MSC2778)
    return AppserviceLoginConfig(types=tuple(dict.fromkeys(types)), errors=errors)
