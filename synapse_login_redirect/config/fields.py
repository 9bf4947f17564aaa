"""Checks shared by the config parsers (``config.module`` and ``config.routing``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synapse.module_api.errors import ConfigError


def checked_mapping(
    raw: Any, path: tuple[str, ...], allowed: tuple[str, ...]
) -> Mapping[str, Any]:
    """``raw`` if it is a mapping whose keys are all ``allowed``; else ConfigError."""
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"must be a mapping with the keys: {', '.join(allowed)}", path
        )
    for key in raw:
        if key not in allowed:
            raise ConfigError(
                f"unknown key {key!r}; allowed keys are: {', '.join(allowed)}",
                (*path, str(key)),
            )
    return raw
