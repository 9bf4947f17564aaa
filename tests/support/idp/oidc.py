"""A small but real OpenID Connect provider for tests, on loopback.

RS256 ID tokens signed with a fresh RSA key (authlib's JOSE), discovery,
JWKS, an authorization endpoint with a login form (or ``login_hint``, or the
provider's own session cookie, for silent sign-in), a token endpoint with
client_secret_basic and client_secret_post, PKCE S256, one-time codes, and
userinfo. Usable in-process (``OidcProvider``) or as a process::

    python -m tests.support.idp.oidc --port 8090 --client-id synapse \\
        --client-secret secret --user alice:alice@eng.example
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import secrets
import threading
import time
from collections.abc import Mapping
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import attr
from authlib.jose import JsonWebKey, jwt

SESSION_COOKIE = "idp_session"
TOKEN_LIFETIME = 300


@attr.s(auto_attribs=True)
class _Grant:
    client_id: str
    redirect_uri: str
    user: str
    nonce: str | None
    code_challenge: str | None


class OidcProvider:
    """One client, a fixed set of users (username -> extra claims)."""

    def __init__(
        self,
        users: Mapping[str, Mapping[str, Any]],
        *,
        client_id: str = "synapse",
        client_secret: str = "oidc-secret",
        port: int = 0,
    ) -> None:
        self.users = {name: dict(claims) for name, claims in users.items()}
        self.client_id = client_id
        self.client_secret = client_secret
        self._key = JsonWebKey.generate_key("RSA", 2048, is_private=True)
        self._kid = secrets.token_hex(8)
        self._codes: dict[str, _Grant] = {}
        self._access_tokens: dict[str, str] = {}
        self._sessions: dict[str, str] = {}
        self._lock = threading.Lock()
        self.logins: list[str] = []  # users who signed in, in order
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.port: int = self._server.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> OidcProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict[str, Any]:
        public = self._key.as_dict(is_private=False)
        return {"keys": [{**public, "kid": self._kid, "use": "sig", "alg": "RS256"}]}

    def claims(self, user: str) -> dict[str, Any]:
        return {"sub": user, "preferred_username": user, **self.users[user]}

    # Authorization endpoint.

    def authorize(self, params: Mapping[str, str], session: str | None) -> _Answer:
        if params.get("client_id") != self.client_id:
            return _Answer.error(400, "invalid_client", "unknown client_id")
        redirect_uri = params.get("redirect_uri", "")
        if urlsplit(redirect_uri).hostname not in ("127.0.0.1", "localhost"):
            return _Answer.error(400, "invalid_request", "redirect_uri not allowed")
        if params.get("response_type") != "code":
            return _Answer.error(400, "unsupported_response_type", "code only")
        user = params.get("username") or params.get("login_hint")
        if not user and session is not None:
            user = self._sessions.get(session)
        if not user:
            return _Answer.page(_login_form(params))
        if user not in self.users:
            return _Answer.page(_login_form(params, error=f"No such user {user!r}"))
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = _Grant(
                self.client_id,
                redirect_uri,
                user,
                params.get("nonce"),
                params.get("code_challenge"),
            )
            self.logins.append(user)
        new_session = secrets.token_urlsafe(16)
        self._sessions[new_session] = user
        query = {
            "code": code,
            **({"state": params["state"]} if "state" in params else {}),
        }
        separator = "&" if "?" in redirect_uri else "?"
        return _Answer.redirect(
            f"{redirect_uri}{separator}{urlencode(query)}",
            cookie=f"{SESSION_COOKIE}={new_session}; Path=/; HttpOnly; SameSite=Lax",
        )

    # Token and userinfo endpoints.

    def token(self, form: Mapping[str, str], authorization: str | None) -> _Answer:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        if client_id != self.client_id or secret != self.client_secret:
            return _Answer.error(401, "invalid_client", "bad client credentials")
        if form.get("grant_type") != "authorization_code":
            return _Answer.error(
                400, "unsupported_grant_type", "authorization_code only"
            )
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return _Answer.error(400, "invalid_grant", "unknown or used code")
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier", "").encode()
            digest = hashlib.sha256(verifier).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if challenge != grant.code_challenge:
                return _Answer.error(400, "invalid_grant", "PKCE verification failed")
        now = int(time.time())
        claims = {
            **self.claims(grant.user),
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        header = {"alg": "RS256", "kid": self._kid}
        id_token = jwt.encode(header, claims, self._key).decode()
        access_token = secrets.token_urlsafe(24)
        self._access_tokens[access_token] = grant.user
        return _Answer.json(
            200,
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "id_token": id_token,
            },
        )

    def userinfo(self, authorization: str | None) -> _Answer:
        token = (authorization or "").removeprefix("Bearer ")
        user = self._access_tokens.get(token)
        if user is None:
            return _Answer.error(401, "invalid_token", "unknown access token")
        return _Answer.json(200, self.claims(user))


@attr.s(frozen=True, auto_attribs=True)
class _Answer:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    location: str | None = None
    cookie: str | None = None

    @classmethod
    def json(cls, status: int, body: Any) -> _Answer:
        return cls(status, json.dumps(body).encode(), "application/json")

    @classmethod
    def error(cls, status: int, error: str, description: str) -> _Answer:
        return cls.json(status, {"error": error, "error_description": description})

    @classmethod
    def page(cls, text: str) -> _Answer:
        return cls(200, text.encode())

    @classmethod
    def redirect(cls, location: str, cookie: str | None = None) -> _Answer:
        return cls(302, location=location, cookie=cookie)


def _login_form(params: Mapping[str, str], error: str | None = None) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
        if k != "username"
    )
    note = f'<p id="error">{html.escape(error)}</p>' if error else ""
    return (
        "<!doctype html><title>Test IdP</title><h1>Test IdP</h1>"
        f'{note}<form method="post" action="/authorize">{hidden}'
        '<input id="username" name="username" autofocus>'
        '<button id="login" type="submit">Sign in</button></form>'
    )


def _handler(provider: OidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            path, _, query = self.path.partition("?")
            params = dict(parse_qsl(query))
            if path == "/.well-known/openid-configuration":
                self._send(_Answer.json(200, provider.metadata()))
            elif path == "/jwks":
                self._send(_Answer.json(200, provider.jwks()))
            elif path == "/authorize":
                self._send(provider.authorize(params, self._session()))
            elif path == "/userinfo":
                self._send(provider.userinfo(self.headers.get("Authorization")))
            else:
                self._send(_Answer.error(404, "not_found", path))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            if self.path == "/authorize":
                self._send(provider.authorize(form, self._session()))
            elif self.path == "/token":
                self._send(provider.token(form, self.headers.get("Authorization")))
            else:
                self._send(_Answer.error(404, "not_found", self.path))

        def _session(self) -> str | None:
            cookies = SimpleCookie(self.headers.get("Cookie") or "")
            morsel = cookies.get(SESSION_COOKIE)
            return None if morsel is None else morsel.value

        def _send(self, answer: _Answer) -> None:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            if answer.location is not None:
                self.send_header("Location", answer.location)
            if answer.cookie is not None:
                self.send_header("Set-Cookie", answer.cookie)
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-id", default="synapse")
    parser.add_argument("--client-secret", default="oidc-secret")
    parser.add_argument("--user", action="append", default=[], help="name:email")
    args = parser.parse_args()
    users = {}
    for spec in args.user:
        name, _, email = spec.partition(":")
        users[name] = {"email": email} if email else {}
    provider = OidcProvider(
        users,
        client_id=args.client_id,
        client_secret=args.client_secret,
        port=args.port,
    )
    print(f"OpenID Connect provider at {provider.issuer}", flush=True)
    provider.serve_forever()


if __name__ == "__main__":
    main()
