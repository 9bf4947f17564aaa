"""An HTTP client that walks SSO redirects like a browser, one hop at a time.

It keeps cookies per host (as browsers do, ignoring ports), sends them by
path, and also keeps ``Secure`` ones over http, as browsers do for loopback.
It never runs JavaScript: the flows here are plain redirects and forms.
"""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from deploy.homeserver import HttpResponse

REDIRECTS = (301, 302, 303, 307)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


class SsoClient:
    def __init__(self) -> None:
        # (host, name) -> (path, value)
        self.cookies: dict[tuple[str, str], tuple[str, str]] = {}
        self.visited: list[str] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        form: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> HttpResponse:
        parts = urlsplit(url)
        host = parts.hostname or ""
        headers = {}
        cookie = "; ".join(
            f"{name}={value}"
            for (h, name), (path, value) in self.cookies.items()
            if h == host and (parts.path or "/").startswith(path)
        )
        if cookie:
            headers["Cookie"] = cookie
        data = None
        if form is not None:
            data = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        self.visited.append(url)
        request = urllib.request.Request(url, data, headers, method=method)
        try:
            with _opener.open(request, timeout=30) as r:
                response = HttpResponse(r.status, dict(r.headers), r.read())
                raw_cookies = r.headers.get_all("Set-Cookie") or []
        except urllib.error.HTTPError as e:
            response = HttpResponse(e.code, dict(e.headers), e.read())
            raw_cookies = e.headers.get_all("Set-Cookie") or []
        for raw in raw_cookies:
            self._store(host, raw)
        return response

    def _store(self, host: str, raw: str) -> None:
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(raw)
        for name, morsel in parsed.items():
            if morsel["max-age"] == "0" or not morsel.value:
                self.cookies.pop((host, name), None)
            else:
                self.cookies[(host, name)] = (morsel["path"] or "/", morsel.value)

    def follow(
        self,
        url: str,
        *,
        until: str,
        rewrite: Callable[[str], str] = lambda u: u,
        max_hops: int = 20,
    ) -> str:
        """GET ``url`` and its redirects, and submit auto-posting forms (SAML's
        HTTP-POST binding); the first Location starting with ``until``."""
        response = self.request("GET", rewrite(url))
        for _ in range(max_hops):
            if response.status in REDIRECTS:
                url = urljoin(url, response.headers["location"])
                if url.startswith(until):
                    return url
                response = self.request("GET", rewrite(url))
                continue
            form = auto_post_form(response)
            if form is None:
                raise AssertionError(f"stopped at {url}: {response!r}")
            url, fields = urljoin(url, form[0]), form[1]
            response = self.request("POST", url, form=fields)
        raise AssertionError(f"more than {max_hops} redirects: {self.visited}")


_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.IGNORECASE)
_INPUT = re.compile(r"<input[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def auto_post_form(response: HttpResponse) -> tuple[str, dict[str, str]] | None:
    """The action and hidden fields of a page that only posts a form onwards."""
    if response.status != 200:
        return None
    text = response.body.decode("utf-8", "replace")
    action = _FORM.search(text)
    if action is None or "SAMLResponse" not in text:
        return None
    fields = {}
    for tag in _INPUT.findall(text):
        attrs = {k.lower(): html.unescape(v) for k, v in _ATTR.findall(tag)}
        if attrs.get("type", "").lower() == "hidden" and "name" in attrs:
            fields[attrs["name"]] = attrs.get("value", "")
    return html.unescape(action[1]), fields
