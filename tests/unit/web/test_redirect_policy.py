"""Which SSO redirectUrl values the module accepts (the SSO spec's TODO)."""

from __future__ import annotations

import pytest

from synapse_login_redirect.web.redirect_policy import RedirectUrlPolicy, UrlPrefix

OPEN = RedirectUrlPolicy()
HTTPS = RedirectUrlPolicy(require_https=True)
LISTED = RedirectUrlPolicy(
    require_https=True,
    allowed_prefixes=(
        UrlPrefix.parse("https://app.element.io/"),
        UrlPrefix.parse("element://connect"),
    ),
)


@pytest.mark.parametrize(
    ("policy", "url", "reason"),
    [
        (OPEN, "https://app.element.io/#/login", None),
        (OPEN, "http://client.example/cb?x=1", None),
        (OPEN, "element://connect", None),
        (OPEN, "/relative/path", "it is not an absolute URL"),
        (OPEN, "javascript:alert(1)", "javascript: URLs are never allowed"),
        (OPEN, "JavaScript:alert(1)", "javascript: URLs are never allowed"),
        (OPEN, "data:text/html,<script>", "data: URLs are never allowed"),
        (OPEN, "file:///etc/passwd", "file: URLs are never allowed"),
        (OPEN, "https:///nohost", "a browser would read another host"),
        (OPEN, "https://host:99999/", "it is not a valid URL"),
        (HTTPS, "https://app.element.io/", None),
        (HTTPS, "http://127.0.0.1:8080/cb", None),
        (HTTPS, "http://localhost/cb", None),
        (HTTPS, "http://[::1]:9000/cb", None),
        (HTTPS, "http://client.example/cb", "this server only allows https"),
        (HTTPS, "element://connect", "this server only allows https"),
        (LISTED, "https://app.element.io/#/login", None),
        (LISTED, "element://connect?x=1", None),
        (LISTED, "https://app.element.io.evil.example/", "is not one of the client"),
        (LISTED, "https://evil.example/", "is not one of the client addresses"),
        (LISTED, "javascript://app.element.io/%0aalert(1)", "never allowed"),
    ],
)
def test_refusal(policy: RedirectUrlPolicy, url: str, reason: str | None) -> None:
    refusal = policy.refusal(url)
    if reason is None:
        assert refusal is None
    else:
        assert refusal is not None and reason in refusal
