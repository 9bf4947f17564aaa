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

from synapse_login_redirect.redirect_policy import RedirectUrlPolicy

PREFIXES = (
    "https://app.element.io",
    "http://127.0.0.1:",
    "https://a.example/app",
    "element://connect",
)
LISTED = RedirectUrlPolicy(allowed_prefixes=PREFIXES)
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


SCHEMES = st.sampled_from(
    [
        "http",
        "https",
        "HTTP",
        "HtTpS",
        "javascript",
        "JavaScript",
        "data",
        "file",
        "blob:https",
        "blob:http",
        "element",
        "ELEMENT",
        "ws",
        "",
    ]
)
SEPARATORS = st.sampled_from(["://", ":/", ":", ":///", ":\\\\", ":/\\", "://\\"])
USERINFO = st.sampled_from(
    [
        "",
        "",
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
    ]
)
HOSTS = st.sampled_from(
    [
        "app.element.io",
        "APP.Element.IO",
        "app.element.io.",
        "app.element.io.evil.example",
        "evil.example",
        "127.0.0.1",
        "0x7f.1",
        "2130706433",
        "127.1",
        "[::1]",
        "[0:0::1]",
        "localhost",
        "LocalHost",
        "a.example",
        "A.EXAMPLE",
        "xn--bcher-kva.example",
        "bücher.example",
        "app。element。io",
        "ａｐｐ.element.io",
        "connect",
        "Connect",
        "app%2eelement.io",
        "evil.example%2F.app.element.io",
        "",
    ]
)
PORTS = st.sampled_from(["", "", ":", ":443", ":80", ":8080", ":0443", ":99999", ":@"])
PATHS = st.sampled_from(
    [
        "",
        "/",
        "/app",
        "/apps",
        "/app/",
        "/app/x",
        "/app/../x",
        "/app/%2e%2e/x",
        "/app/%2E./x",
        "/app%2F..%2Fx",
        "/app\\..\\x",
        "\\evil.example",
        "//evil.example",
        "/%40evil.example",
        "/cb",
        "/@evil.example",
    ]
)
TAILS = st.sampled_from(
    ["", "", "?x=1", "#frag", "?@evil.example", "#@evil.example", "#/login?x=1"]
)
NASTY = st.sampled_from(
    ["\t", "\n", "\r", "\\", "@", "%2F", "%40", "..", "/", " ", "\x00", "#", "?", ":"]
)


@st.composite
def hostile_urls(draw: st.DrawFn) -> str:
    url = (
        draw(SCHEMES)
        + draw(SEPARATORS)
        + draw(USERINFO)
        + draw(HOSTS)
        + draw(PORTS)
        + draw(PATHS)
        + draw(TAILS)
    )
    for _ in range(draw(st.integers(0, 2))):
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
