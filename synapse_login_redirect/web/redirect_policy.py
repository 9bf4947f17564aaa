"""Which SSO ``redirectUrl`` values are acceptable, judged as a browser parses them.

URLs are parsed with ada, an implementation of the WHATWG URL standard that
browsers follow (``urllib.parse`` differs from browsers on backslashes, tabs,
newlines and user info). No Synapse imports.

Never acceptable: a relative URL; the schemes a browser would run or read
locally (``javascript:``, ``data:``, ``vbscript:``, ``file:``, ``blob:``); user
info, backslashes and ASCII control characters; and a URL whose parsed host or
port is not the one its text shows (``https:evil.example``, ``http://0x7f.1/``).

An operator may require https (plain http stays allowed for loopback hosts,
where native and test clients listen) and list allowed prefixes. A prefix names
an origin (scheme, host and port; written with an empty port, as in
``http://127.0.0.1:``, any port) and a path, which a URL's path must equal or
continue at a ``/``. Mobile apps' own schemes are listed with their host
(``element://connect``). A listed prefix admits its URLs even when https is
required. Synapse's ``sso.client_whitelist`` is matched the same way by the
portal (``ClientWhitelist``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import ada_url
import attr

NEVER_ALLOWED_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
# The WHATWG URL standard's special schemes (file: aside) and default ports.
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_AUTHORITY = re.compile(r"//([^/?#]*)")
_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:]*)(?::(.*))?", re.DOTALL)


class RefusedUrl(ValueError):
    """Why a URL is refused, as a phrase for an error page."""


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ClientUrl:
    """A client's URL as a browser parses it."""

    scheme: str  # lower case, without the colon
    host: str  # as serialised (IDNA, brackets for IPv6); "" when none
    port: int | None  # None: the scheme's default, or none written
    path: str
    href: str

    @property
    def shown_as(self) -> str:
        """What a confirmation page names: the host for https, else the URL
        without query and fragment (as Synapse's own page does)."""
        if self.scheme == "https":
            return self.host if self.port is None else f"{self.host}:{self.port}"
        return ada_url.replace_url(self.href, search="", hash="")


def parse_client_url(text: str) -> ClientUrl:
    """``text`` as a browser parses it; RefusedUrl if it is not acceptable."""
    if any(c < " " or c == "\x7f" for c in text):
        raise RefusedUrl("it contains a control character (a tab, a newline, ...)")
    if "\\" in text:
        raise RefusedUrl("it contains a backslash")
    if text != text.strip(" "):
        raise RefusedUrl("it begins or ends with a space")
    scheme_match = _SCHEME.match(text)
    if scheme_match is None:
        raise RefusedUrl("it is not an absolute URL")
    scheme = scheme_match[0][:-1].lower()
    if scheme in NEVER_ALLOWED_SCHEMES:
        raise RefusedUrl(f"{scheme}: URLs are never allowed")
    try:
        parsed = ada_url.parse_url(text)
    except ValueError:
        raise RefusedUrl("it is not a valid URL") from None
    authority = _AUTHORITY.match(text, scheme_match.end())
    written = None if authority is None else authority[1]
    if parsed["username"] or parsed["password"] or "@" in (written or ""):
        raise RefusedUrl("it must not contain a user name or password")
    url = ClientUrl(
        scheme=scheme,
        host=parsed["hostname"],
        port=int(parsed["port"]) if parsed["port"] else None,
        path=parsed["pathname"],
        href=parsed["href"],
    )
    if _written_host_and_port(scheme, written) != (url.host, url.port):
        raise RefusedUrl("a browser would read another host or port in it")
    return url


def _written_host_and_port(
    scheme: str, authority: str | None
) -> tuple[str, int | None] | None:
    """The host and port the text shows after ``//``, normalised as a browser
    does (case and IDNA for the special schemes); None if unreadable."""
    if authority is None:
        # A special scheme always has a host, even when "//" is not written.
        return None if scheme in _DEFAULT_PORTS else ("", None)
    match = _HOST_PORT.fullmatch(authority)
    if match is None:
        return None
    host, port_text = match[1], match[2]
    if scheme in _DEFAULT_PORTS:
        host = host.lower() if host.isascii() else ada_url.idna_to_ascii(host).decode()
    if not port_text:
        return host, None
    if not port_text.isdigit():
        return None
    port = int(port_text)
    return host, None if port == _DEFAULT_PORTS.get(scheme) else port


@attr.s(frozen=True, slots=True, auto_attribs=True)
class UrlPrefix:
    """An allowed prefix: the URLs of its origin whose path is its path or
    continues it at a ``/``."""

    text: str
    scheme: str
    host: str
    port: int | None
    any_port: bool
    path: str

    @classmethod
    def parse(cls, text: str) -> UrlPrefix:
        """RefusedUrl if ``text`` does not name an origin and a path."""
        url = parse_client_url(text)
        if url.scheme not in ("http", "https") and (
            url.scheme in _DEFAULT_PORTS or not url.host
        ):
            raise RefusedUrl(
                "it does not name an origin: use https://host[:port][/path], "
                "http://..., or an app's own scheme with its host (element://connect)"
            )
        if "?" in text or "#" in text:
            raise RefusedUrl("it must not have a query or a fragment")
        authority = _AUTHORITY.match(text, len(url.scheme) + 1)
        any_port = authority is not None and authority[1].endswith(":")
        return cls(text, url.scheme, url.host, url.port, any_port, url.path)

    def admits(self, url: ClientUrl) -> bool:
        if (url.scheme, url.host) != (self.scheme, self.host):
            return False
        if not self.any_port and url.port != self.port:
            return False
        if url.path == self.path:
            return True
        return url.path.startswith(
            self.path if self.path.endswith("/") else self.path + "/"
        )


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RedirectUrlPolicy:
    """The operator's rules for SSO ``redirectUrl`` values (``redirect_url:``)."""

    require_https: bool = False
    allowed_prefixes: tuple[UrlPrefix, ...] = ()

    def refusal(self, url: str) -> str | None:
        """Why ``url`` is refused, or None if it is acceptable."""
        try:
            parsed = parse_client_url(url)
        except RefusedUrl as e:
            return str(e)
        if any(prefix.admits(parsed) for prefix in self.allowed_prefixes):
            return None
        if self.allowed_prefixes:
            return "it is not one of the client addresses this server allows"
        if self.require_https and parsed.scheme != "https":
            if parsed.scheme != "http" or parsed.host not in LOOPBACK_HOSTS:
                return "this server only allows https addresses (or http on loopback)"
        return None


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ClientWhitelist:
    """Synapse's ``sso.client_whitelist``, matched by origin: the clients that
    get a login token without Synapse's confirmation page."""

    prefixes: tuple[UrlPrefix, ...]
    # (entry, why) for entries that name no origin: they never match.
    unusable: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, entries: Iterable[str]) -> ClientWhitelist:
        prefixes = []
        unusable = []
        for entry in entries:
            try:
                prefixes.append(UrlPrefix.parse(entry))
            except RefusedUrl as e:
                unusable.append((entry, str(e)))
        return cls(tuple(prefixes), tuple(unusable))

    def admits(self, url: str) -> bool:
        try:
            parsed = parse_client_url(url)
        except RefusedUrl:
            return False
        return any(prefix.admits(parsed) for prefix in self.prefixes)

    def misleads_synapse(self, url: str) -> bool:
        """Whether Synapse's own prefix match would skip its confirmation page
        for ``url`` although its origin and path are not whitelisted."""
        starts = any(url.startswith(prefix.text) for prefix in self.prefixes)
        return starts and not self.admits(url)
