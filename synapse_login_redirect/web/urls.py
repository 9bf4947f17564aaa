"""URL checks and the query rewriting MSC1731 needs. No Synapse imports."""

from __future__ import annotations

import re
from urllib.parse import (
    parse_qsl,
    quote,
    unquote_plus,
    urlencode,
    urlsplit,
    urlunsplit,
)

# Query and form parameters: of the SSO redirect, and of the portal's pages.
REDIRECT_URL_PARAM = "redirectUrl"
HOMESERVER_PARAM = "homeserver"  # MSC1731's, beside loginToken
LOGIN_TOKEN_PARAM = "loginToken"
SESSION_PARAM = "session"
IDP_PARAM = "idp"
DEPARTMENT_PARAM = "department"
USER_PARAM = "user"

SSO_REDIRECT_PATH = "/_matrix/client/v3/login/sso/redirect"
# A fragment read as parameters, as clients with routes in the fragment do
# (``#/login?a=1&b=2``, ``#a=1``): its "?"/"&" separated parts.
_FRAGMENT_PART = re.compile(r"[^?&]*[?&]?")


def normalise_base_url(value: str) -> str:
    """Check a client-server base URL and return it without a trailing slash.

    Raises ValueError saying what is wrong: only http(s) URLs with a host and
    no credentials, query or fragment are accepted.
    """
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"{value!r} is not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{value!r} must start with https:// or http://")
    if not parts.hostname:
        raise ValueError(f"{value!r} has no host name")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{value!r} must not contain credentials")
    if parts.query or value.endswith("?"):
        raise ValueError(f"{value!r} must not have a query string")
    if parts.fragment or "#" in value:
        raise ValueError(f"{value!r} must not have a fragment")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def set_homeserver_param(redirect_url: str, homeserver: str) -> str | None:
    """Return ``redirect_url`` with exactly one ``homeserver`` query parameter.

    Any ``homeserver`` already in the URL is dropped first, so a crafted link
    cannot choose the homeserver a client is sent to. Returns None when the URL
    cannot be parsed or has no scheme; such URLs are left for Synapse to judge.
    """
    try:
        parts = urlsplit(redirect_url)
    except ValueError:
        return None
    if not parts.scheme:
        return None
    return add_query_params(redirect_url, [(HOMESERVER_PARAM, homeserver)])


def login_url(base_url: str, version: str) -> str:
    """The ``/login`` URL of a homeserver, at a client API version (``v3``...)."""
    return f"{base_url}/_matrix/client/{version}/login"


def sso_redirect_path(idp_id: str | None) -> str:
    """The path of SSO sign-in: at ``idp_id``, or at the homeserver's choice."""
    if idp_id is None:
        return SSO_REDIRECT_PATH
    return f"{SSO_REDIRECT_PATH}/{quote(idp_id, safe='')}"


def host_of(base_url: str) -> str:
    """The host (and port, if any) of a normalised base URL."""
    return urlsplit(base_url).netloc


def add_query_params(url: str, params: list[tuple[str, str]]) -> str:
    """``url`` with ``params`` appended, after removing any of the same names
    from its query and from its fragment (the rest of the fragment is kept)."""
    parts = urlsplit(url)
    names = {name for name, _ in params}
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in names
    ]
    return urlunsplit(
        parts._replace(
            query=urlencode(query + params),
            fragment=_without_params(parts.fragment, names),
        )
    )


def _without_params(fragment: str, names: set[str]) -> str:
    """``fragment`` without the parameters named ``names``."""
    kept = "".join(
        part
        for part in _FRAGMENT_PART.findall(fragment)
        if unquote_plus(part.rstrip("?&").partition("=")[0]) not in names
    )
    return kept.rstrip("?&") if kept != fragment else fragment
