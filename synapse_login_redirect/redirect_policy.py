"""Which SSO ``redirectUrl`` values are acceptable (the SSO spec's TODO). No Synapse imports.

Never acceptable: a relative URL, and the schemes a browser would run or read
locally (``javascript:``, ``data:``, ``vbscript:``, ``file:``, ``blob:``).
An operator may also require https (plain http stays allowed for loopback
hosts, where native and test clients listen) and list allowed prefixes. A
listed prefix admits its URLs even when https is required, so mobile apps'
own schemes (``element://``) can be allowed explicitly.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attr

NEVER_ALLOWED_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RedirectUrlPolicy:
    require_https: bool = False
    allowed_prefixes: tuple[str, ...] = ()

    def refusal(self, url: str) -> str | None:
        """Why ``url`` is refused, or None if it is acceptable."""
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises ValueError on a bad port
        except ValueError:
            return "it is not a valid URL"
        scheme = parts.scheme.lower()
        if not scheme:
            return "it is not an absolute URL"
        if scheme in NEVER_ALLOWED_SCHEMES:
            return f"{scheme}: URLs are never allowed"
        if scheme in ("http", "https") and not parts.hostname:
            return "it has no host"
        if any(url.startswith(prefix) for prefix in self.allowed_prefixes):
            return None
        if self.allowed_prefixes:
            return "it is not one of the client addresses this server allows"
        if self.require_https and scheme != "https":
            if scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
                return "this server only allows https addresses (or http on loopback)"
        return None
