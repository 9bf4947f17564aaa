"""Redirect URLs are judged by origin, as a browser parses them (issue 11, item 2).

The oracle is ada (the WHATWG URL parser, as in browsers): whatever the policy
accepts must, parsed by ada, have an allowed origin and a path under the
allowed path at a ``/`` boundary.
"""

from __future__ import annotations

import ada_url
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synapse_login_redirect.web.redirect_policy import (
    ClientWhitelist,
    RedirectUrlPolicy,
    RefusedUrl,
    UrlPrefix,
    parse_client_url,
)
from synapse_login_redirect.web.urls import add_query_params

PREFIXES = (
    "https://app.element.io",
    "http://127.0.0.1:",
    "https://a.example/app",
    "element://connect",
)
LISTED = RedirectUrlPolicy(allowed_prefixes=tuple(map(UrlPrefix.parse, PREFIXES)))
HTTPS = RedirectUrlPolicy(require_https=True)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def allowed_by_listed(url: str) -> bool:
    """The oracle for ``LISTED``, written out by hand."""
    p = ada_url.parse_url(url)
    scheme, host, port, path = p["protocol"], p["hostname"], p["port"], p["pathname"]
    if p["username"] or p["password"]:
        return False
    return (
        (scheme, host, port) == ("https:", "app.element.io", "")
        or (scheme, host) == ("http:", "127.0.0.1")
        or (
            (scheme, host, port) == ("https:", "a.example", "") and _under(path, "/app")
        )
        or ((scheme, host, port) == ("element:", "connect", ""))
    )


def allowed_by_https(url: str) -> bool:
    """The oracle for ``HTTPS``: https, or http on a loopback host."""
    p = ada_url.parse_url(url)
    if p["username"] or p["password"]:
        return False
    if p["protocol"] == "https:":
        return True
    return p["protocol"] == "http:" and p["hostname"] in (
        "127.0.0.1",
        "localhost",
        "[::1]",
    )


# The attacks of the issue, and their neighbours.
@pytest.mark.parametrize(
    ("policy", "url"),
    [
        (LISTED, "http://127.0.0.1:@evil.example/cb"),
        (LISTED, "http://127.0.0.1:80@evil.example/cb"),
        (LISTED, "https://app.element.io.evil.example/"),
        (LISTED, "https://app.element.io@evil.example/"),
        (LISTED, "https://app.element.io%2F@evil.example/"),
        (LISTED, "https://app.element.io:443@evil.example/"),
        (LISTED, "https://a.example/apps"),
        (LISTED, "https://a.example/app/../evil"),
        (LISTED, "https://a.example/app/%2e%2e/evil"),
        (LISTED, "https://a.example/app%2F..%2Fevil"),
        (LISTED, "element://connect@evil.example/"),
        (LISTED, "element://connect.evil/"),
        (LISTED, "http://127.0.0.1:\t@evil.example/"),
        (LISTED, "https://app.element.io\t.evil.example/"),
        (LISTED, "https://app.element.io\\@evil.example/"),
        (HTTPS, "http://evil.example\\@127.0.0.1/"),
        (HTTPS, "http://evil.example\\@localhost/"),
        (HTTPS, "http://127.0.0.1@evil.example/"),
        (HTTPS, "http://localhost:@evil.example/"),
        (HTTPS, "http:\\\\evil.example\\@127.0.0.1/"),
    ],
)
def test_attack_is_refused(policy: RedirectUrlPolicy, url: str) -> None:
    assert policy.refusal(url) is not None


@pytest.mark.parametrize(
    ("policy", "url"),
    [
        (LISTED, "https://app.element.io/#/login"),
        (LISTED, "https://APP.Element.io:443/#/login"),
        (LISTED, "http://127.0.0.1:8080/cb?x=1"),
        (LISTED, "http://127.0.0.1/cb"),
        (LISTED, "https://a.example/app"),
        (LISTED, "https://a.example/app/"),
        (LISTED, "https://a.example/app/x?y=1#z"),
        (LISTED, "element://connect"),
        (LISTED, "element://connect/x?y"),
        (HTTPS, "https://client.example/cb"),
        (HTTPS, "http://127.0.0.1:8080/cb"),
        (HTTPS, "http://[::1]:9000/cb"),
    ],
)
def test_allowed_urls_stay_allowed(policy: RedirectUrlPolicy, url: str) -> None:
    assert policy.refusal(url) is None


def pieces(usual: list[str], hostile: list[str]) -> st.SearchStrategy[str]:
    """One of ``usual`` three times in four, else one of ``hostile``."""
    usual_piece = st.sampled_from(usual)
    return st.one_of(usual_piece, usual_piece, usual_piece, st.sampled_from(hostile))


SCHEMES = pieces(
    ["https", "http", "element"],
    [
        "HTTP",
        "HtTpS",
        "javascript",
        "JavaScript",
        "data",
        "file",
        "blob:https",
        "blob:http",
        "ELEMENT",
        "ws",
        "",
    ],
)
SEPARATORS = pieces(["://"], [":/", ":", ":///", ":\\", ":/\\", "://\\"])
USERINFO = pieces(
    [""],
    [
        "user@",
        "127.0.0.1:@",
        "127.0.0.1:80@",
        "app.element.io@",
        "connect@",
        ":@",
        "@",
        "a%40b@",
        "x:y@",
        "evil.example%2F@",
        "evil.example\\@",
    ],
)
HOSTS = pieces(
    ["app.element.io", "127.0.0.1", "a.example", "connect", "localhost"],
    [
        "APP.Element.IO",
        "app.element.io.",
        "app.element.io.evil.example",
        "evil.example",
        "0x7f.1",
        "2130706433",
        "127.1",
        "[::1]",
        "[0:0::1]",
        "LocalHost",
        "A.EXAMPLE",
        "xn--bcher-kva.example",
        "bücher.example",
        "app。element。io",
        "ａｐｐ.element.io",
        "Connect",
        "app%2eelement.io",
        "evil.example%2F.app.element.io",
        "",
    ],
)
PORTS = pieces([""], [":", ":443", ":80", ":8080", ":0443", ":99999", ":@"])
PATHS = pieces(
    ["", "/", "/app", "/app/", "/app/x", "/cb"],
    [
        "/apps",
        "/app/../x",
        "/app/%2e%2e/x",
        "/app/%2E./x",
        "/app%2F..%2Fx",
        "/app\\..\\x",
        "\\evil.example",
        "//evil.example",
        "/%40evil.example",
        "/@evil.example",
    ],
)
TAILS = pieces(
    ["", "?x=1", "#frag", "#/login?x=1"], ["?@evil.example", "#@evil.example"]
)
NASTY = st.sampled_from(
    [
        *("\t", "\n", "\r", "\\", "@", "%2F", "%40", "..", "/", " ", "\x00"),
        *("#", "?", ":", ":8080", "@evil.example", ".evil.example", "user@"),
        *("evil.example\\@", "%2e%2e/", "../", "/..", "%2F..%2F", "%00", "。"),
    ]
)
GOOD = st.sampled_from(
    [
        "https://app.element.io/#/login",
        "http://127.0.0.1:8080/cb?x=1",
        "https://a.example/app/x",
        "element://connect/cb",
        "http://localhost/cb",
    ]
)


@st.composite
def hostile_urls(draw: st.DrawFn) -> str:
    """Hostile pieces put together, or an allowed URL with hostile insertions."""
    if draw(st.booleans()):
        url = draw(GOOD)
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(url)))
            url = url[:at] + draw(NASTY) + url[at:]
        return url
    url = (
        draw(SCHEMES)
        + draw(SEPARATORS)
        + draw(USERINFO)
        + draw(HOSTS)
        + draw(PORTS)
        + draw(PATHS)
        + draw(TAILS)
    )
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        at = draw(st.integers(0, len(url)))
        url = url[:at] + draw(NASTY) + url[at:]
    return url


def _clean(url: str) -> bool:
    """No backslash and no ASCII control character (tab and newline included)."""
    return "\\" not in url and not any(ord(c) < 0x20 or c == "\x7f" for c in url)


def _parses(url: str) -> bool:
    try:
        ada_url.parse_url(url)
    except ValueError:
        return False
    return True


PROPERTY = settings(
    max_examples=2000,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(hostile_urls())
def test_listed_accepts_only_allowed_origins(url: str) -> None:
    if LISTED.refusal(url) is None:
        assert _clean(url) and _parses(url) and allowed_by_listed(url), url


@PROPERTY
@given(hostile_urls())
def test_require_https_accepts_only_https_or_loopback(url: str) -> None:
    if HTTPS.refusal(url) is None:
        assert _clean(url) and _parses(url) and allowed_by_https(url), url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https:evil.example", "a browser would read another host"),
        ("https:///evil.example", "a browser would read another host"),
        ("http://0x7f.1/", "a browser would read another host"),
        ("http://127.1/", "a browser would read another host"),
        ("https://app%2eelement.io/", "a browser would read another host"),
        ("https://@app.element.io/", "must not contain a user name or password"),
        ("http://127.0.0.1:@evil.example/cb", "must not contain a user name"),
        ("http://evil.example\\@127.0.0.1/", "contains a backslash"),
        ("https://app.element.io\t.evil.example/", "contains a control character"),
        ("https://app.element.io/\n", "contains a control character"),
        (" https://app.element.io/", "begins or ends with a space"),
        ("https://app.element.io/ ", "begins or ends with a space"),
        ("blob:https://app.element.io/x", "blob: URLs are never allowed"),
    ],
)
def test_refusal_says_why(url: str, reason: str) -> None:
    refusal = RedirectUrlPolicy().refusal(url)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize(
    "url",
    [
        "https://bücher.example/",  # IDNA: the host a browser reads
        "https://app。element。io/",
        "HTTPS://APP.Element.IO:0443/",
        "http://[::1]:8080/",
        "element://Connect/x",
        "com.example.app:/callback",
    ],
)
def test_text_and_browser_agree(url: str) -> None:
    assert RedirectUrlPolicy().refusal(url) is None


@pytest.mark.parametrize(
    ("prefix", "url", "admitted"),
    [
        ("https://a.example/app", "https://a.example/app", True),
        ("https://a.example/app", "https://a.example/app/", True),
        ("https://a.example/app", "https://a.example/app/x", True),
        ("https://a.example/app", "https://a.example/app?x#y", True),
        ("https://a.example/app", "https://a.example/apps", False),
        ("https://a.example/app", "https://a.example/", False),
        ("https://a.example/app/", "https://a.example/app", False),
        ("https://a.example/app/", "https://a.example/app/x", True),
        ("https://a.example", "https://a.example/anything", True),
        ("https://a.example", "https://a.example:8443/", False),
        ("https://a.example", "http://a.example/", False),
        ("http://127.0.0.1:", "http://127.0.0.1:1234/cb", True),
        ("http://127.0.0.1:", "http://127.0.0.1/cb", True),
        ("http://127.0.0.1:/cb", "http://127.0.0.1:9/cb/x", True),
        ("http://127.0.0.1:/cb", "http://127.0.0.1:9/", False),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8081/", False),
        ("element://connect", "element://connect", True),
        ("element://connect", "element://connect/x?y", True),
        ("element://connect", "element://connected", False),
    ],
)
def test_prefix_admits_by_origin_and_path(
    prefix: str, url: str, admitted: bool
) -> None:
    policy = RedirectUrlPolicy(allowed_prefixes=(UrlPrefix.parse(prefix),))
    assert (policy.refusal(url) is None) is admitted


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("element://", "does not name an origin"),
        ("element:connect", "does not name an origin"),
        ("ws://a.example/", "does not name an origin"),
        ("https://a.example/?x=1", "must not have a query or a fragment"),
        ("https://a.example/#/login", "must not have a query or a fragment"),
        ("https://user@a.example/", "must not contain a user name"),
        ("app.element.io", "not an absolute URL"),
        ("javascript:", "never allowed"),
        ("https://a.example:99999/", "not a valid URL"),
    ],
)
def test_prefix_must_name_an_origin(prefix: str, reason: str) -> None:
    with pytest.raises(RefusedUrl, match=reason):
        UrlPrefix.parse(prefix)


WHITELIST = ClientWhitelist.of(
    ["https://app.element.io", "http://127.0.0.1:", "element://", "https://x/?q"]
)


def test_whitelist_entries_without_an_origin_never_match() -> None:
    assert [entry for entry, _ in WHITELIST.unusable] == ["element://", "https://x/?q"]
    assert not WHITELIST.admits("element://connect")
    assert not WHITELIST.misleads_synapse("element://connect")  # left to Synapse


@pytest.mark.parametrize(
    ("url", "admitted", "misleading"),
    [
        ("https://app.element.io/#/login", True, False),
        ("http://127.0.0.1:7/cb", True, False),
        ("https://app.element.io.evil.example/", False, True),
        ("https://app.element.io@evil.example/", False, True),
        ("http://127.0.0.1:@evil.example/", False, True),
        ("https://evil.example/", False, False),
    ],
)
def test_whitelist_matches_by_origin(
    url: str, admitted: bool, misleading: bool
) -> None:
    assert WHITELIST.admits(url) is admitted
    assert WHITELIST.misleads_synapse(url) is misleading


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://app.element.io/#/login", "app.element.io"),
        ("https://app.element.io:8443/x?y", "app.element.io:8443"),
        ("https://bücher.example/", "xn--bcher-kva.example"),
        ("http://127.0.0.1:9/cb?x=1#f", "http://127.0.0.1:9/cb"),
        ("element://connect?x", "element://connect"),
    ],
)
def test_confirmation_page_names_the_browser_parsed_host(url: str, shown: str) -> None:
    assert parse_client_url(url).shown_as == shown


LISTED_WHITELIST = ClientWhitelist.of(PREFIXES)


@PROPERTY
@given(hostile_urls())
def test_whitelist_admits_only_allowed_origins(url: str) -> None:
    if LISTED_WHITELIST.admits(url):
        assert _clean(url) and _parses(url) and allowed_by_listed(url), url


@PROPERTY
@given(hostile_urls())
def test_adding_the_token_keeps_the_origin_and_path(url: str) -> None:
    """The URL the portal sends the browser to is judged like the client's."""
    if RedirectUrlPolicy().refusal(url) is None:
        final = add_query_params(
            url, [("homeserver", "https://hs"), ("loginToken", "t")]
        )
        before, after = parse_client_url(url), parse_client_url(final)
        assert (after.scheme, after.host, after.port, after.path) == (
            before.scheme,
            before.host,
            before.port,
            before.path,
        )
