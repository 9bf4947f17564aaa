"""The routing engine: which target (homeserver) a login goes to.

No Synapse imports. ``config.routing.parse_routing`` builds a ``RoutingEngine``
from::

    rules:                        # in order: the first rule that matches wins
      - server_name: eng.example  # the MXID's server name, or a list of them
        target: eng
      - localpart: "hist-.*"      # a regex that matches the whole localpart
        target: hist
      - email_domain: [hist.example, "*.hist.example"]  # or one; *. = subdomains
        target: hist
      - attribute: {name: department, equals: physics}  # or matches: <regex>
        target: phys
      - directory: /etc/matrix/directory.tsv  # no target: the file names them
    pool:                         # for users no rule places; 0 = no new users
      eng: 2
      hist: 1

Targets are the module's target names and ``self`` (stay on this server).
Everything is case-insensitive except attribute names and values:
``LoginSubject`` lower-cases the localpart, server name and email. A directory
rule looks up the full MXID, then the bare localpart, then the email address,
so a bare-localpart entry matches that localpart under any server name.

Users no rule places are identified by ``LoginSubject.user_key``: the localpart
whatever the server name (``alice`` and ``@alice:portal.example`` are one
user), else the email address. Their pool assignment is sticky: a stored
assignment to a known target is kept whatever the pool now says, even if that
target is unhealthy, since the account lives there (rules ignore health too).
A new user gets a pool target by weighted rendezvous hashing of the user key,
skipping unhealthy targets: workers racing on one user pick the same target,
and adding a target only moves users onto it. ``route`` reads the stored
assignment; the caller stores a new one with ``claim`` once the login is on
its way there, and the first assignment stored wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from hashlib import blake2b
from typing import Protocol

import attr

from synapse_login_redirect.routing.directory import Directory

__all__ = [
    "SELF",
    "Assignments",
    "AttributeRule",
    "Decision",
    "DirectoryRule",
    "EmailDomainRule",
    "LocalpartRule",
    "LoginSubject",
    "Rule",
    "RoutingEngine",
    "ServerNameRule",
    "WeightedPool",
    "claim",
    "route",
]

# The target meaning "log in on this homeserver".
SELF = "self"


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _freeze_attributes(
    raw: Mapping[str, Sequence[str] | str],
) -> Mapping[str, tuple[str, ...]]:
    """Copy the attributes, taking a lone string as a one-value list."""
    return {
        name: (values,) if isinstance(values, str) else tuple(values)
        for name, values in raw.items()
    }


@attr.s(frozen=True, slots=True, auto_attribs=True)
class LoginSubject:
    """What a login tells about the user; identifiers are lower-cased."""

    localpart: str | None = attr.ib(default=None, converter=_lower)
    server_name: str | None = attr.ib(default=None, converter=_lower)
    email: str | None = attr.ib(default=None, converter=_lower)
    # SAML attributes or OIDC claims, each a list of values.
    attributes: Mapping[str, tuple[str, ...]] = attr.ib(
        factory=dict, converter=_freeze_attributes
    )

    @classmethod
    def from_user(cls, user: str) -> LoginSubject:
        """The subject of a ``@localpart:server.name`` or bare-localpart login."""
        if user.startswith("@") and ":" in user:
            localpart, _, server_name = user[1:].partition(":")
            return cls(localpart=localpart, server_name=server_name)
        return cls(localpart=user)

    @property
    def mxid(self) -> str | None:
        """The full Matrix ID, if both parts are known."""
        if self.localpart is None or self.server_name is None:
            return None
        return f"@{self.localpart}:{self.server_name}"

    @property
    def email_domain(self) -> str | None:
        """The part of the email after the last ``@``, if any."""
        if self.email is None:
            return None
        _, at, domain = self.email.rpartition("@")
        return domain if at else None

    @property
    def user_key(self) -> str | None:
        """The key of the user's pool assignment: localpart, else email."""
        return self.localpart if self.localpart is not None else self.email

    def is_plausible(self) -> bool:
        """Whether it could name a user: a Matrix ID (localpart, at most 255
        bytes in all) or an email address (at most 254 bytes), no spaces.

        The portal routes (and remembers) only plausible subjects.
        """
        if self.localpart is not None:
            mxid = self.mxid or f"@{self.localpart}:"
            return (
                _plausible(self.localpart, 255)
                and not self.localpart.startswith("@")
                and ":" not in self.localpart
                and (self.server_name is None or _plausible(self.server_name, 255))
                and len(mxid.encode("utf-8")) <= 255
            )
        if self.email is not None:
            local, _, domain = self.email.rpartition("@")
            return (
                _plausible(self.email, 254)
                and _plausible(local, 254)
                and _plausible(domain, 254)
            )
        return False


def _plausible(text: str, max_bytes: int) -> bool:
    """Non-empty, at most ``max_bytes`` in UTF-8, no whitespace or controls."""
    return (
        0 < len(text.encode("utf-8")) <= max_bytes
        and text.isprintable()
        and not any(c.isspace() for c in text)
    )


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Decision:
    """Where a login goes, why, and whether the caller must store it."""

    target: str
    reason: str
    # A new pool assignment: the caller stores it under the user key (``claim``).
    new_assignment: bool = False
    # The stored assignment, to a target no longer known, that it replaces.
    replaces: str | None = None


class Rule(Protocol):
    """One entry of ``rules``."""

    def target_for(self, subject: LoginSubject) -> str | None:
        """The target this rule places the subject on, or None."""
        ...

    def describe(self) -> str:
        """What matched, for ``Decision.reason``."""
        ...


def _one_of(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "one of " + ", ".join(items)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ServerNameRule:
    """The MXID's server name is one of ``names`` (lower-case)."""

    names: tuple[str, ...]
    target: str

    def target_for(self, subject: LoginSubject) -> str | None:
        return self.target if subject.server_name in self.names else None

    def describe(self) -> str:
        return f"server_name is {_one_of(self.names)}"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class LocalpartRule:
    """``regex`` matches the whole localpart."""

    regex: re.Pattern[str]
    target: str

    def target_for(self, subject: LoginSubject) -> str | None:
        localpart = subject.localpart
        if localpart is None or self.regex.fullmatch(localpart) is None:
            return None
        return self.target

    def describe(self) -> str:
        return f"localpart matches {self.regex.pattern!r}"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class EmailDomainRule:
    """The email's domain is one of ``domains`` or ends with one of ``suffixes``.

    Both lower-case; a suffix includes its leading dot (``.hist.example``).
    """

    domains: tuple[str, ...]
    suffixes: tuple[str, ...]
    target: str

    def target_for(self, subject: LoginSubject) -> str | None:
        domain = subject.email_domain
        if domain is None:
            return None
        if domain in self.domains or domain.endswith(self.suffixes):
            return self.target
        return None

    def describe(self) -> str:
        patterns = [*self.domains, *(f"*{suffix}" for suffix in self.suffixes)]
        return f"email domain is {_one_of(patterns)}"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class AttributeRule:
    """A value of attribute ``name`` equals ``equals`` or fully matches ``matches``.

    Exactly one of ``equals`` and ``matches`` is set.
    """

    name: str
    target: str
    equals: str | None = None
    matches: re.Pattern[str] | None = None

    def target_for(self, subject: LoginSubject) -> str | None:
        values = subject.attributes.get(self.name, ())
        if self.matches is None:
            found = self.equals in values
        else:
            found = any(self.matches.fullmatch(value) for value in values)
        return self.target if found else None

    def describe(self) -> str:
        if self.matches is None:
            return f"attribute {self.name} equals {self.equals!r}"
        return f"attribute {self.name} matches {self.matches.pattern!r}"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class DirectoryRule:
    """The user is listed in a directory file, which names the target."""

    directory: Directory

    def target_for(self, subject: LoginSubject) -> str | None:
        lookup = self.directory.lookup
        return (
            lookup(subject.mxid) or lookup(subject.localpart) or lookup(subject.email)
        )

    def describe(self) -> str:
        return f"listed in directory {self.directory.path}"


class WeightedPool:
    """Weighted rendezvous hashing over the targets that take new users.

    Each target draws an exponential variable with rate = weight from a hash
    of (target, user key); the smallest wins. So a target wins with probability
    weight / total, and a target's draw does not depend on the other targets.
    """

    __slots__ = ("weights", "_candidates")

    def __init__(self, weights: Mapping[str, int]) -> None:
        self.weights = dict(weights)
        # Sorted by name so that ties and iteration do not depend on config order.
        self._candidates = tuple(
            (name, weight, blake2b(name.encode() + b"\0", digest_size=8))
            for name, weight in sorted(self.weights.items())
            if weight > 0
        )

    def pick(self, user_key: str, unhealthy: Collection[str] = ()) -> str | None:
        """The target for a new user, or None if no target takes new users."""
        key = user_key.encode()
        best, best_score = None, math.inf
        for name, weight, hasher in self._candidates:
            if name in unhealthy:
                continue
            # uniform in (0, 1) from blake2b-64(name NUL user key); -ln(uniform)
            # / weight is an exponential draw of rate weight. Inline for speed.
            h = hasher.copy()
            h.update(key)
            uniform = (int.from_bytes(h.digest(), "big") + 0.5) / 2.0**64
            score = -math.log(uniform) / weight
            if score < best_score:
                best, best_score = name, score
        return best

    def skipped(self, unhealthy: Collection[str]) -> list[str]:
        """The targets taking new users that ``unhealthy`` excludes."""
        return [name for name, _, _ in self._candidates if name in unhealthy]

    def describe(self) -> str:
        weights = ", ".join(f"{name}={weight}" for name, weight in self.weights.items())
        return f"weights {weights or 'none'}"


class RoutingEngine:
    """Decides where logins go: rules, then sticky assignment, then the pool.

    Immutable and storage-free. Rules must name known targets (``config.routing``
    checks this).
    """

    __slots__ = ("rules", "pool", "known_targets", "_rules", "_sticky", "_picked")

    def __init__(
        self,
        rules: Sequence[Rule],
        pool: WeightedPool,
        known_targets: Collection[str],
    ) -> None:
        self.rules = tuple(rules)
        self.pool = pool
        self.known_targets = frozenset(known_targets) | {SELF}
        # Decisions are built once: deciding allocates nothing on the usual paths.
        self._rules = tuple(
            (rule, self._decisions(f"rules[{i}]: {rule.describe()}"))
            for i, rule in enumerate(self.rules)
        )
        self._sticky = self._decisions("sticky assignment")
        self._picked = self._decisions(f"pool ({pool.describe()})", new=True)

    def _decisions(self, reason: str, new: bool = False) -> dict[str, Decision]:
        return {t: Decision(t, reason, new) for t in self.known_targets}

    def match_rules(self, subject: LoginSubject) -> Decision | None:
        """The decision of the first rule that matches, if any."""
        for rule, decisions in self._rules:
            target = rule.target_for(subject)
            if target is not None:
                return decisions[target]
        return None

    def assign(
        self,
        user_key: str | None,
        *,
        assignment: str | None = None,
        unhealthy: Collection[str] = (),
    ) -> Decision | None:
        """Keep a known ``assignment``, else pick a healthy pool target."""
        kept = self.sticky(assignment)
        if kept is not None:
            return kept
        if user_key is None:
            return None
        target = self.pool.pick(user_key, unhealthy)
        if target is None:
            return None
        skipped = self.pool.skipped(unhealthy) if unhealthy else []
        if assignment is None and not skipped:
            return self._picked[target]
        reason = self._pool_reason(skipped, assignment)
        return Decision(target, reason, new_assignment=True, replaces=assignment)

    def sticky(self, assignment: str | None) -> Decision | None:
        """The decision for a stored assignment, if its target is known."""
        return None if assignment is None else self._sticky.get(assignment)

    def _pool_reason(self, skipped: list[str], assignment: str | None) -> str:
        notes = [self.pool.describe()]
        if skipped:
            notes.append(f"skipped unhealthy {', '.join(skipped)}")
        if assignment is not None:
            notes.append(f"previous target {assignment!r} is unknown")
        return f"pool ({'; '.join(notes)})"


class Assignments(Protocol):
    """Where callers keep pool assignments, by ``LoginSubject.user_key``."""

    async def get(self, user_key: str) -> str | None: ...

    async def claim(self, user_key: str, target: str, replacing: str | None) -> str:
        """Store ``target`` if the user's assignment is still ``replacing``
        (None: none stored); the assignment stored now, whoever stored it."""
        ...


async def route(
    engine: RoutingEngine,
    subject: LoginSubject,
    store: Assignments,
    *,
    unhealthy: Collection[str] = (),
) -> Decision | None:
    """Decide for ``subject``, reading its stored pool assignment if no rule
    matches. A new assignment is not stored: see ``claim``."""
    decision = engine.match_rules(subject)
    if decision is not None:
        return decision
    user_key = subject.user_key
    if user_key is None:
        return None
    assignment = await store.get(user_key)
    return engine.assign(user_key, assignment=assignment, unhealthy=unhealthy)


async def claim(
    engine: RoutingEngine,
    subject: LoginSubject,
    store: Assignments,
    decision: Decision,
) -> Decision:
    """Store a new pool assignment of ``route``'s, unless another process
    stored one for the user first: then the decision of that one, which wins."""
    if not decision.new_assignment or subject.user_key is None:
        return decision
    stored = await store.claim(subject.user_key, decision.target, decision.replaces)
    if stored == decision.target:
        return decision
    return engine.sticky(stored) or decision
