"""The ``appservice_login`` config (MSC2778)."""

from __future__ import annotations

from typing import Any

from synapse.module_api.errors import ConfigError

from synapse_login_redirect.config.fields import checked_mapping
from synapse_login_redirect.target.appservice_login import (
    APPSERVICE_TYPES,
    ERRORS_MSC2778,
    ERRORS_SYNAPSE,
    AppserviceLoginConfig,
)

_APPSERVICE_LOGIN_KEYS = ("types", "errors")
_APPSERVICE_ERRORS = (ERRORS_MSC2778, ERRORS_SYNAPSE)


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
    errors = settings.get("errors", ERRORS_MSC2778)
    if errors not in _APPSERVICE_ERRORS:
        raise ConfigError(
            f"must be one of: {', '.join(_APPSERVICE_ERRORS)}, not {errors!r}",
            (*path, "errors"),
        )
    return AppserviceLoginConfig(types=tuple(dict.fromkeys(types)), errors=errors)
