"""Parsing the ``routing`` config (``rules`` and ``pool``) into a RoutingEngine.

Mistakes raise Synapse's ``ConfigError`` with the key path and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from synapse.module_api.errors import ConfigError

from synapse_login_redirect.config.fields import checked_mapping
from synapse_login_redirect.routing.directory import (
    Directory,
    DirectoryError,
    load_directory,
    unknown_target,
)
from synapse_login_redirect.routing.engine import (
    SELF,
    AttributeRule,
    DirectoryRule,
    EmailDomainRule,
    LocalpartRule,
    RoutingEngine,
    Rule,
    ServerNameRule,
    WeightedPool,
)

__all__ = ["parse_routing"]


_TOP_KEYS = ("rules", "pool")
_RULE_KINDS = ("server_name", "localpart", "email_domain", "attribute", "directory")
_RULE_KEYS = (*_RULE_KINDS, "target")
_ATTRIBUTE_KEYS = ("name", "equals", "matches")
_SERVER_NAME = re.compile(r"[^\s@/]+")
_EMAIL_DOMAIN = re.compile(r"(\*\.)?[^\s@*]+")


def parse_routing(
    raw: Any, known_targets: Collection[str], path: tuple[str, ...] = ()
) -> RoutingEngine:
    """Build the engine from ``{rules: [...], pool: {...}}`` (None means empty).

    ``known_targets`` are the configured target names (``self`` is added);
    ``path`` prefixes the key paths of errors. Raises ConfigError.
    """
    known = frozenset(known_targets) | {SELF}
    top = checked_mapping({} if raw is None else raw, path, _TOP_KEYS)
    rules = _rules(top.get("rules"), (*path, "rules"), known)
    pool = _pool(top.get("pool"), (*path, "pool"), known)
    return RoutingEngine(rules, pool, known)


def _rules(raw: Any, path: tuple[str, ...], known: frozenset[str]) -> list[Rule]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(
            f"must be a list of rules, each with one of: {', '.join(_RULE_KINDS)}",
            path,
        )
    return [_rule(item, (*path, str(i)), known) for i, item in enumerate(raw)]


def _rule(raw: Any, path: tuple[str, ...], known: frozenset[str]) -> Rule:
    spec = checked_mapping(raw, path, _RULE_KEYS)
    kinds = [kind for kind in _RULE_KINDS if kind in spec]
    if len(kinds) != 1:
        given = f"has {' and '.join(kinds)}" if kinds else "has none"
        raise ConfigError(
            f"a rule has exactly one of: {', '.join(_RULE_KINDS)}; this one {given}",
            path,
        )
    kind = kinds[0]
    here = (*path, kind)
    if kind == "directory":
        if "target" in spec:
            raise ConfigError(
                "is not allowed in a directory rule: the directory file names "
                "each user's target",
                (*path, "target"),
            )
        return DirectoryRule(_directory(spec[kind], here, known))
    target = _target(spec.get("target"), (*path, "target"), known)
    if kind == "server_name":
        names = _names(
            spec[kind], here, _SERVER_NAME, "a server name, e.g. eng.example"
        )
        return ServerNameRule(names, target)
    if kind == "localpart":
        return LocalpartRule(_regex(spec[kind], here, re.IGNORECASE), target)
    if kind == "email_domain":
        return _email_domain_rule(spec[kind], here, target)
    return _attribute_rule(spec[kind], here, target)


def _target(raw: Any, path: tuple[str, ...], known: frozenset[str]) -> str:
    if raw is None:
        raise ConfigError(
            f"is required: the target of the users this rule matches; "
            f"known targets are: {', '.join(sorted(known))}",
            path,
        )
    if not isinstance(raw, str) or raw not in known:
        raise ConfigError(unknown_target(raw, known), path)
    return raw


def _names(
    raw: Any, path: tuple[str, ...], pattern: re.Pattern[str], what: str
) -> tuple[str, ...]:
    """A string or a non-empty list of strings matching ``pattern``, lower-cased."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise ConfigError(f"must be {what}, or a list of them", path)
    for i, item in enumerate(items):
        if not isinstance(item, str) or not pattern.fullmatch(item):
            here = path if isinstance(raw, str) else (*path, str(i))
            raise ConfigError(f"must be {what}, not {item!r}", here)
    return tuple(item.lower() for item in items)


def _email_domain_rule(raw: Any, path: tuple[str, ...], target: str) -> Rule:
    what = "a domain like hist.example or a wildcard like *.hist.example"
    patterns = _names(raw, path, _EMAIL_DOMAIN, what)
    return EmailDomainRule(
        domains=tuple(p for p in patterns if not p.startswith("*.")),
        suffixes=tuple(p[1:] for p in patterns if p.startswith("*.")),
        target=target,
    )


def _attribute_rule(raw: Any, path: tuple[str, ...], target: str) -> Rule:
    spec = checked_mapping(raw, path, _ATTRIBUTE_KEYS)
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(
            "is required: the SAML attribute or OIDC claim, e.g. department",
            (*path, "name"),
        )
    if ("equals" in spec) == ("matches" in spec):
        raise ConfigError(
            "needs exactly one of: equals (a string), matches (a regular expression)",
            path,
        )
    if "matches" in spec:
        regex = _regex(spec["matches"], (*path, "matches"), 0)
        return AttributeRule(name, target, matches=regex)
    equals = spec["equals"]
    if not isinstance(equals, str):
        raise ConfigError(
            f"must be a string (quote numbers), not {equals!r}", (*path, "equals")
        )
    return AttributeRule(name, target, equals=equals)


def _regex(raw: Any, path: tuple[str, ...], flags: int) -> re.Pattern[str]:
    if not isinstance(raw, str):
        raise ConfigError(f"must be a regular expression string, not {raw!r}", path)
    try:
        return re.compile(raw, flags)
    except re.error as e:
        raise ConfigError(f"invalid regular expression {raw!r}: {e}", path) from None


def _directory(raw: Any, path: tuple[str, ...], known: frozenset[str]) -> Directory:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"must be the path of a directory file, not {raw!r}", path)
    try:
        return load_directory(raw, known)
    except OSError as e:
        raise ConfigError(f"cannot read {raw}: {e.strerror}", path) from None
    except DirectoryError as e:
        raise ConfigError(f"{raw}: {e}", path) from None


def _pool(raw: Any, path: tuple[str, ...], known: frozenset[str]) -> WeightedPool:
    if raw is None:
        return WeightedPool({})
    if not isinstance(raw, Mapping):
        raise ConfigError(
            "must be a mapping of target name to weight, e.g. {eng: 2, hist: 1}",
            path,
        )
    for name, weight in raw.items():
        here = (*path, str(name))
        if name not in known:
            raise ConfigError(unknown_target(name, known), here)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise ConfigError(
                f"must be a whole number >= 0 (0 takes no new users), not {weight!r}",
                here,
            )
    return WeightedPool(raw)
