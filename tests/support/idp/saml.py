"""A small but real SAML 2.0 identity provider for tests, on loopback (pysaml2).

Receives AuthnRequests by HTTP-Redirect, signs in a user with a form (or
``login_hint``, or its own session cookie, for silent sign-in), and answers
by HTTP-POST with a response and assertion both signed (xmlsec1, a fresh
self-signed certificate). Service providers' metadata is fetched from their
URLs when a request arrives, so the IdP can start before them.
"""

from __future__ import annotations

import datetime
import html
import secrets
import tempfile
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server

SESSION_COOKIE = "saml_idp_session"
XMLSEC = "/usr/bin/xmlsec1"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-idp")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "idp.key", directory / "idp.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class SamlIdp:
    """Users are uid -> attributes (each a list of strings); ``uid`` is added."""

    def __init__(
        self, users: Mapping[str, Mapping[str, Sequence[str]]], port: int = 0
    ) -> None:
        self.users = {
            uid: {k: list(v) for k, v in a.items()} for uid, a in users.items()
        }
        self.sp_metadata_urls: list[str] = []
        self.logins: list[str] = []
        self._sessions: dict[str, str] = {}
        self._dir = tempfile.TemporaryDirectory(prefix="saml-idp-")
        self._key, self._cert = _self_signed(Path(self._dir.name))
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.metadata_path = Path(self._dir.name) / "idp-metadata.xml"
        self.metadata_path.write_text(
            create_metadata_string(None, config=self._config([]), sign=False).decode()
        )
        self._lock = threading.Lock()

    def _config(self, sp_metadata: list[str]) -> IdPConfig:
        config = IdPConfig()
        config.load(
            {
                "entityid": f"{self.base_url}/metadata",
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [
                                (f"{self.base_url}/sso", BINDING_HTTP_REDIRECT)
                            ]
                        },
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                        "policy": {"default": {"lifetime": {"minutes": 15}}},
                    }
                },
                "key_file": str(self._key),
                "cert_file": str(self._cert),
                "xmlsec_binary": XMLSEC,
                "metadata": {"inline": sp_metadata},
            }
        )
        return config

    def start(self) -> SamlIdp:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()

    def _idp_server(self) -> Server:
        metadata = []
        for url in self.sp_metadata_urls:
            with urllib.request.urlopen(url, timeout=10) as response:
                metadata.append(response.read().decode())
        return Server(config=self._config(metadata))

    def sso(
        self, params: Mapping[str, str], session: str | None
    ) -> tuple[int, str, str | None]:
        """Status, HTML and a Set-Cookie value for an AuthnRequest (plus a user)."""
        user = params.get("username") or params.get("login_hint")
        if not user and session is not None:
            user = self._sessions.get(session)
        if not user or user not in self.users:
            error = f"No such user {user!r}" if user else None
            return 200, _login_form(params, error), None
        server = self._idp_server()
        request = server.parse_authn_request(
            params["SAMLRequest"], BINDING_HTTP_REDIRECT
        )
        response_args = server.response_args(request.message, [BINDING_HTTP_POST])
        identity = {"uid": [user], **self.users[user]}
        response = server.create_authn_response(
            identity=identity,
            userid=user,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=user),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
            sign_assertion=True,
            sign_response=True,
            **response_args,
        )
        http_args = server.apply_binding(
            BINDING_HTTP_POST,
            str(response),
            response_args["destination"],
            params.get("RelayState", ""),
            response=True,
        )
        with self._lock:
            self.logins.append(user)
        session_id = secrets.token_urlsafe(16)
        self._sessions[session_id] = user
        cookie = f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax"
        return 200, str(http_args["data"]), cookie


def _login_form(params: Mapping[str, str], error: str | None) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
        if k in ("SAMLRequest", "RelayState", "SigAlg", "Signature")
    )
    note = f'<p id="error">{html.escape(error)}</p>' if error else ""
    return (
        "<!doctype html><title>Test SAML IdP</title><h1>Test SAML IdP</h1>"
        f'{note}<form method="post" action="/sso">{hidden}'
        '<input id="username" name="username" autofocus>'
        '<button id="login" type="submit">Sign in</button></form>'
    )


def _handler(idp: SamlIdp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            path, _, query = self.path.partition("?")
            if path == "/metadata":
                self._send(200, idp.metadata_path.read_text(), "application/xml")
            elif path == "/sso":
                self._answer(dict(parse_qsl(query)))
            else:
                self._send(404, "not found")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            if self.path == "/sso":
                self._answer(form)
            else:
                self._send(404, "not found")

        def _answer(self, params: dict[str, str]) -> None:
            cookies = SimpleCookie(self.headers.get("Cookie") or "")
            morsel = cookies.get(SESSION_COOKIE)
            status, body, cookie = idp.sso(
                params, None if morsel is None else morsel.value
            )
            self._send(status, body, cookie=cookie)

        def _send(
            self,
            status: int,
            body: str,
            content_type: str = "text/html; charset=utf-8",
            cookie: str | None = None,
        ) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if cookie is not None:
                self.send_header("Set-Cookie", cookie)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
