"""Field readers shared by the config parsers: each names the key path on error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from synapse.module_api.errors import ConfigError

from synapse_login_redirect.web.urls import normalise_base_url

Choice = TypeVar("Choice", bound=str)


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


def seconds(
    raw: Mapping[str, Any],
    key: str,
    path: tuple[str, ...],
    default: float,
    *,
    zero: bool,
) -> float:
    """``raw[key]`` as seconds (> 0, or >= 0 when ``zero`` turns it off)."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        valid = False
    else:
        valid = value > 0 or zero
    if not valid:
        allowed = (
            "a number of seconds >= 0 (0 turns it off)"
            if zero
            else "a number of seconds > 0"
        )
        raise ConfigError(f"must be {allowed}, not {value!r}", (*path, key))
    return float(value)


def optional_url(raw: Mapping[str, Any], key: str, path: tuple[str, ...]) -> str | None:
    """``raw[key]`` as a normalised base URL, or None when absent."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(
            "must be a URL string, e.g. https://matrix.example", (*path, key)
        )
    try:
        return normalise_base_url(value)
    except ValueError as e:
        raise ConfigError(str(e), (*path, key)) from None


def text(raw: Mapping[str, Any], key: str, path: tuple[str, ...], default: str) -> str:
    """``raw[key]`` as a non-empty, stripped string."""
    value = raw.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"must be a non-empty string, not {value!r}", (*path, key))
    return value.strip()


def one_of(
    raw: Mapping[str, Any],
    key: str,
    path: tuple[str, ...],
    choices: tuple[Choice, ...],
    default: Choice,
) -> Choice:
    """``raw[key]``, which must be one of ``choices``."""
    value = raw.get(key, default)
    if value not in choices:
        raise ConfigError(
            f"must be one of: {', '.join(choices)}, not {value!r}", (*path, key)
        )
    return value  # type: ignore[no-any-return]


def boolean(
    raw: Mapping[str, Any], key: str, path: tuple[str, ...], *, default: bool
) -> bool:
    """``raw[key]`` as a boolean."""
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, not {value!r}", (*path, key))
    return value
