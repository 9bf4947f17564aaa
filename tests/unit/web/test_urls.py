from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from synapse_login_redirect.web.urls import normalise_base_url, set_homeserver_param


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("https://matrix.example", "https://matrix.example"),
        ("https://matrix.example/", "https://matrix.example"),
        ("https://Matrix.Example:8448//", "https://matrix.example:8448"),
        ("http://127.0.0.1:8008/base/", "http://127.0.0.1:8008/base"),
        ("http://[::1]:8008", "http://[::1]:8008"),
    ],
)
def test_normalise_base_url(raw: str, normal: str) -> None:
    assert normalise_base_url(raw) == normal


HS = "https://matrix.eng.example"


def params(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_adds_homeserver_and_keeps_the_rest() -> None:
    url = set_homeserver_param("https://app.example/cb?state=a%26b&x=", HS)
    assert url is not None
    assert params(url) == {"state": ["a&b"], "x": [""], "homeserver": [HS]}
    assert url.startswith("https://app.example/cb?")


def test_replaces_smuggled_homeserver() -> None:
    url = set_homeserver_param(
        "https://app.example/?homeserver=https://evil.example&homeserver=x#/login", HS
    )
    assert url is not None
    assert params(url) == {"homeserver": [HS]}
    assert urlsplit(url).fragment == "/login"


@pytest.mark.parametrize(
    ("fragment", "kept"),
    [
        ("/login?homeserver=https://evil.example&x=1", "/login?x=1"),
        ("/login?x=1&homeserver=https://evil.example", "/login?x=1"),
        ("homeserver=https://evil.example", ""),
        ("homeserver=https://evil.example&a=1", "a=1"),
        ("/room?home%73erver=evil&homeserver", "/room"),
        ("/a?x=homeserver&y=1", "/a?x=homeserver&y=1"),
        ("/login", "/login"),
    ],
)
def test_homeserver_smuggled_in_the_fragment_is_removed(
    fragment: str, kept: str
) -> None:
    url = set_homeserver_param(f"https://app.example/cb?x=1#{fragment}", HS)
    assert url is not None
    parts = urlsplit(url)
    assert parse_qs(parts.query) == {"x": ["1"], "homeserver": [HS]}
    assert parts.fragment == kept


def test_custom_scheme_of_native_apps() -> None:
    url = set_homeserver_param("im.example.app:/callback", HS)
    assert url is not None
    assert url.startswith("im.example.app:/callback?")
    assert params(url) == {"homeserver": [HS]}


@pytest.mark.parametrize("bad", ["", "/relative/path", "no scheme", "http://[::1"])
def test_unparseable_urls_are_left_alone(bad: str) -> None:
    assert set_homeserver_param(bad, HS) is None
