"""The directory file of ``directory`` routing rules: a user → target table.

One entry per line, ``<user> <target>``, separated by tabs or spaces. ``<user>``
is a full Matrix ID (``@alice:eng.example``), a bare localpart (``alice``) or
an email address (``alice@eng.example``), compared case-insensitively. ``#``
starts a comment, on a line of its own or after the target; blank lines are
ignored. A user may be listed twice only with the same target.

The table is a plain dict: for 1,000,000 lines it loads in about a second and
holds about 100 bytes per entry (see ``benchmarks/routing_engine.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import attr

# How many bad lines a DirectoryError quotes.
MAX_REPORTED_PROBLEMS = 5


class DirectoryError(Exception):
    """The directory file cannot be used; the message says why."""


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Directory:
    """A loaded directory file: lower-cased user → target name."""

    path: str
    entries: Mapping[str, str] = attr.ib(repr=False, eq=False)

    def lookup(self, user: str | None) -> str | None:
        """The target of ``user`` (already lower-cased), or None if not listed."""
        return None if user is None else self.entries.get(user)


def load_directory(path: str, known_targets: Collection[str]) -> Directory:
    """Read a directory file; raise DirectoryError listing its first bad lines.

    OSError is left to the caller.
    """
    try:
        with open(path, encoding="utf-8") as lines:
            entries = _parse_lines(lines, known_targets)
    except UnicodeDecodeError as e:
        raise DirectoryError(f"is not UTF-8 text: {e.reason}") from None
    return Directory(path, entries)


class _Problems:
    """Counts bad lines and keeps the first few for the error message."""

    def __init__(self) -> None:
        self.reported: list[str] = []
        self.count = 0

    def add(self, lineno: int, message: str) -> None:
        self.count += 1
        if len(self.reported) < MAX_REPORTED_PROBLEMS:
            self.reported.append(f"line {lineno}: {message}")

    def raise_if_any(self) -> None:
        if not self.count:
            return
        which = "" if self.count == len(self.reported) else ", the first ones"
        plural = "" if self.count == 1 else "s"
        raise DirectoryError(
            f"{self.count} bad line{plural}{which}: " + "; ".join(self.reported)
        )


def _parse_lines(
    lines: Iterable[str], known_targets: Collection[str]
) -> dict[str, str]:
    # Values are the caller's target strings, so 1M entries share a few objects.
    targets = {name: name for name in known_targets}
    entries: dict[str, str] = {}
    problems = _Problems()
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) != 2 or fields[0][0] == "#" or fields[1][0] == "#":
            fields = _without_comment(fields)
            if not fields:
                continue
            if len(fields) != 2:
                problems.add(
                    lineno, f"expected '<user> <target>', got {line.strip()!r}"
                )
                continue
        user, target_name = fields
        target = targets.get(target_name)
        if target is None:
            problems.add(lineno, unknown_target(target_name, targets))
            continue
        if user[0] == "@" and ":" not in user:
            problems.add(
                lineno, f"{user!r} is not a full Matrix ID (@alice:example.org)"
            )
            continue
        previous = entries.setdefault(user.lower(), target)
        if previous is not target:
            problems.add(
                lineno, f"{user!r} was already listed with target {previous!r}"
            )
    problems.raise_if_any()
    return entries


def _without_comment(fields: list[str]) -> list[str]:
    for i, field in enumerate(fields):
        if field.startswith("#"):
            return fields[:i]
    return fields


def unknown_target(name: object, targets: Collection[str]) -> str:
    """What a config error says of a target name that is not in ``targets``."""
    known = ", ".join(sorted(targets)) or "none"
    return f"unknown target {name!r}; known targets are: {known}"
