"""A portal deployment: two target homeservers and two portals in front of them.

- ``eng`` (server name ``eng.test``) and ``hist`` (``hist.test``): targets with
  the module; ``hist`` locks an account after 3 failed logins.
- ``portal`` (sqlite): every target in redirect mode, pool ``eng: 1, hist: 1``.
- ``portal-proxy`` (PostgreSQL): every target in proxy mode, ``base_cs_url``
  on, plus ``slow`` (a socket that never answers; 2 s timeout) and ``down``
  (a closed port, weight 100 in the pool, failing its 1 s health checks).

Both portals route by server name, localpart pattern, email domain and a
directory file; ``@...:<portal>.test`` users stay on the portal (``self``).

Single sign-on: both targets sign users in with one OpenID Connect provider
(``tests/support/idp/oidc.py``, idp ``oidc-testidp``). ``portal-proxy`` routes SSO
(home-realm page with departments and a user field), allows redirectUrls
under ``ALLOWED_CLIENTS`` only, and skips Synapse's confirmation page for
``WHITELISTED_CLIENTS``. Its own IdPs are the same provider, SAML, and a
second OpenID Connect provider (``OTHER_IDP_ID``) whose ``ivy`` has the same
subject as the first one's but is another user (``@other_ivy``) with other
claims.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attr
import pytest

from deploy.homeserver import (
    Homeserver,
    assert_no_errors_logged,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    http,
    start_all,
    stop_all,
)
from tests.live.conftest import PASSWORD
from tests.support.idp.oidc import OidcProvider
from tests.support.idp.saml import SamlIdp

POOL_USERS = ("paula", "quinn", "rita", "stan", "tess", "ursula")
ENG_USERS = ("erin", "carol", *POOL_USERS)
HIST_USERS = ("hugo", "hist_hana", "hist_locked", "ivy", *POOL_USERS)
EMAILS = {"erin": "erin@eng.example", "hugo": "hugo@hist.example"}
LOCKED_AFTER = 3
PROXY_TIMEOUT = 2
IDP_ID = "oidc-testidp"
PORTAL_IDP_ID = "oidc-portalidp"  # the same provider, as the portal's own IdP
SAML_IDP_ID = "saml"
OTHER_IDP_ID = "oidc-otheridp"  # a second IdP of the portal's own
DEPARTMENTS = {"Engineering": "eng", "History": "hist", "Lab": "down"}
# "element://" names no origin: the portal warns that it never matches.
WHITELISTED_CLIENTS = ["http://client.test/", "http://127.0.0.1:", "element://"]
ALLOWED_CLIENTS = ["http://client.test/", "http://127.0.0.1:", "http://localhost:"]
UNPLACED_MESSAGE = "The portal cannot place you: ask the help desk."


# The raw HTTP response to a request, in chunks; None never answers.
Answer = Callable[[bytes], Iterable[bytes] | None]


class FakeTarget:
    """A homeserver stand-in: records each request that arrives and answers
    with ``answer(request)``; without ``answer`` it never answers (a hanging
    target)."""

    def __init__(self, answer: Answer | None = None) -> None:
        self._answer = answer
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen()
        self.port: int = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.received: list[bytes] = []
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._connections.append(connection)
            threading.Thread(
                target=self._handle, args=(connection,), daemon=True
            ).start()

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(1)
        data = b""
        try:
            while b"\r\n\r\n" not in data or not _has_body(data):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        self.received.append(data)
        chunks = self._answer(data) if self._answer is not None else None
        if chunks is None:
            return
        try:
            connection.settimeout(30)
            for chunk in chunks:
                connection.sendall(chunk)
        except OSError:
            pass  # the portal stopped reading
        finally:
            connection.close()

    def close(self) -> None:
        self._socket.close()
        for connection in self._connections:
            connection.close()


def wait_for_log(hs: Homeserver, text: bytes, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while text not in hs.log_path.read_bytes():
        assert time.monotonic() < deadline, f"{text!r} not in {hs.name}'s log"
        time.sleep(0.2)


def _has_body(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


PORTAL_FEDERATION_PORT = free_port()


@attr.s(frozen=True, auto_attribs=True)
class PortalDeployment:
    eng: Homeserver
    hist: Homeserver
    portal: Homeserver
    portal_proxy: Homeserver
    slow: FakeTarget
    postgres_db: str
    idp: OidcProvider
    saml_idp: SamlIdp
    other_idp: OidcProvider

    @property
    def targets(self) -> dict[str, Homeserver]:
        return {"eng": self.eng, "hist": self.hist}

    @property
    def all(self) -> list[Homeserver]:
        return [self.eng, self.hist, self.portal, self.portal_proxy]


def portal_module_config(
    targets: dict[str, Homeserver],
    mode: str,
    directory: Path,
    *,
    pool: dict[str, int],
    extra_targets: dict[str, Any] | None = None,
    extra_rules: list[dict[str, Any]] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    names = {"eng": "Engineering", "hist": "History"}
    return {
        "targets": {
            **{
                name: {
                    "base_url": hs.base_url,
                    "mode": mode,
                    "public_name": names[name],
                }
                for name, hs in targets.items()
            },
            **(extra_targets or {}),
        },
        "portal": {
            "rules": [
                {"server_name": "eng.test", "target": "eng"},
                {"server_name": "hist.test", "target": "hist"},
                {"server_name": ["portal.test", "portal-proxy.test"], "target": "self"},
                {"localpart": "hist_.*", "target": "hist"},
                {"email_domain": "eng.example", "target": "eng"},
                {"email_domain": "hist.example", "target": "hist"},
                {"directory": str(directory)},
                *(extra_rules or []),
            ],
            "pool": pool,
            "unplaced_message": UNPLACED_MESSAGE,
            **settings,
        },
    }


def _oidc_provider(
    idp: OidcProvider,
    idp_id: str,
    mapping_module: str | None = None,
    *,
    name: str = "Test IdP",
    localpart_prefix: str = "",
) -> dict[str, Any]:
    template = localpart_prefix + "{{ user.preferred_username }}"
    mapping: dict[str, Any] = {"config": {"localpart_template": template}}
    if mapping_module is not None:
        mapping["module"] = mapping_module
    return {
        "idp_id": idp_id,
        "idp_name": name,
        "issuer": idp.issuer,
        "client_id": idp.client_id,
        "client_secret": idp.client_secret,
        "scopes": ["openid", "profile", "email"],
        "skip_verification": True,
        "allow_existing_users": True,
        "user_mapping_provider": mapping,
    }


def _saml_config(saml_idp: SamlIdp, mapping: dict[str, Any]) -> dict[str, Any]:
    return {
        "sp_config": {
            "metadata": {"local": [str(saml_idp.metadata_path)]},
            "allow_unknown_attributes": True,
            "xmlsec_binary": "/usr/bin/xmlsec1",
        },
        "user_mapping_provider": mapping,
    }


def _sso_config(
    idp: OidcProvider, saml_idp: SamlIdp, portal_proxy_port: int
) -> dict[str, Any]:
    """A target's SSO: both test IdPs, and the portal's completion URL allowed."""
    completion = (
        f"http://127.0.0.1:{portal_proxy_port}/_synapse/client/login_redirect/complete"
    )
    return {
        "oidc_providers": [_oidc_provider(idp, "testidp")],
        "saml2_config": _saml_config(
            saml_idp, {"config": {"mxid_source_attribute": "uid"}}
        ),
        "sso": {"client_whitelist": [completion]},
    }


def _bind_emails(hs: Homeserver, users: dict[str, str]) -> None:
    """Give users an email address with Synapse's admin API."""
    hs.register_user("admin", PASSWORD, admin=True)
    token = hs.password_login("admin", PASSWORD).json()["access_token"]
    for localpart, email in users.items():
        response = http(
            "PUT",
            hs.url(f"/_synapse/admin/v2/users/@{localpart}:{hs.server_name}"),
            {"threepids": [{"medium": "email", "address": email}]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status == 200, response


@pytest.fixture(scope="session")
def portals(workdir: Path) -> Iterator[PortalDeployment]:
    idp = OidcProvider(
        {
            "erin": {"email": EMAILS["erin"], "name": "Erin"},
            "hugo": {"email": EMAILS["hugo"], "name": "Hugo"},
            "ivy": {"email": "ivy@elsewhere.example", "department": "History"},
            "zed": {"department": "Nowhere"},
        }
    ).start()
    saml_idp = SamlIdp(
        {
            "erin": {"email": [EMAILS["erin"]]},
            "hugo": {"email": [EMAILS["hugo"]]},
            "ivy": {"department": ["History"]},
            "zed": {"department": ["Nowhere"]},
        }
    ).start()
    other_idp = OidcProvider({"ivy": {"email": "ivy@eng.example"}}).start()
    portal_proxy_port = free_port()
    sso = _sso_config(idp, saml_idp, portal_proxy_port)
    eng = Homeserver("eng", workdir, module_config={}, extra_config=sso)
    hist = Homeserver(
        "hist",
        workdir,
        module_config={},
        extra_config={
            **sso,
            "rc_login": {
                "address": {"per_second": 10000, "burst_count": 10000},
                "account": {"per_second": 10000, "burst_count": 10000},
                "failed_attempts": {"per_second": 0.001, "burst_count": LOCKED_AFTER},
            },
        },
    )
    directory = workdir / "directory.tsv"
    directory.write_text("# user  target\ncarol\teng\n")
    targets = {"eng": eng, "hist": hist}
    portal = Homeserver(
        "portal",
        workdir,
        module_config=portal_module_config(
            targets,
            "redirect",
            directory,
            pool={"eng": 1, "hist": 1},
            # SSO through the portal, which has no IdP of its own.
            sso={"departments": {"Engineering": "eng", "History": "hist"}},
        ),
    )
    # A federation-only listener, where the module's pages must not be.
    portal.config["listeners"].append(
        {
            "port": PORTAL_FEDERATION_PORT,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "resources": [{"names": ["federation"]}],
        }
    )
    portal.write_config()
    slow = FakeTarget()
    postgres_db = f"login_redirect_portal_{free_port()}"
    create_postgres_database(postgres_db)
    portal_proxy = Homeserver(
        "portal-proxy",
        workdir,
        port=portal_proxy_port,
        postgres_db=postgres_db,
        extra_config={
            "sso": {"client_whitelist": WHITELISTED_CLIENTS},
            "oidc_providers": [
                _oidc_provider(
                    idp, "portalidp", "synapse_login_redirect.OidcMappingProvider"
                ),
                _oidc_provider(
                    other_idp,
                    OTHER_IDP_ID.removeprefix("oidc-"),
                    "synapse_login_redirect.OidcMappingProvider",
                    name="Other IdP",
                    localpart_prefix="other_",
                ),
            ],
            "saml2_config": _saml_config(
                saml_idp,
                {
                    "module": "synapse_login_redirect.SamlMappingProvider",
                    "config": {
                        "mxid_source_attribute": "uid",
                        "routing_attributes": ["department"],
                    },
                },
            ),
        },
        module_config={
            "base_cs_url": True,
            "redirect_url": {
                "require_https": True,
                "allowed_prefixes": ALLOWED_CLIENTS,
            },
            **portal_module_config(
                targets,
                "proxy",
                directory,
                pool={"eng": 1, "hist": 1, "down": 100},
                extra_targets={
                    "slow": {
                        "base_url": f"http://127.0.0.1:{slow.port}",
                        "mode": "proxy",
                        "public_name": "Slow Lab",
                    },
                    "down": {"base_url": f"http://127.0.0.1:{free_port()}"},
                },
                extra_rules=[
                    {"localpart": "slow_.*", "target": "slow"},
                    {
                        "attribute": {"name": "department", "equals": "History"},
                        "target": "hist",
                    },
                    {
                        "attribute": {"name": "department", "equals": "Nowhere"},
                        "target": "self",
                    },
                ],
                proxy_timeout=PROXY_TIMEOUT,
                health_check_interval=1,
                sso={
                    "departments": DEPARTMENTS,
                    "portal_idps": {
                        PORTAL_IDP_ID: IDP_ID,
                        SAML_IDP_ID: SAML_IDP_ID,
                        # The targets do not know this IdP: tests stop at the
                        # portal's routing decision.
                        OTHER_IDP_ID: IDP_ID,
                    },
                },
            ),
        },
    )
    saml_idp.sp_metadata_urls = [
        hs.url("/_synapse/client/saml2/metadata.xml")
        for hs in (eng, hist, portal_proxy)
    ]
    deployment = PortalDeployment(
        eng, hist, portal, portal_proxy, slow, postgres_db, idp, saml_idp, other_idp
    )
    start_all(deployment.all)
    try:
        for localpart in ENG_USERS:
            eng.register_user(localpart, PASSWORD)
        for localpart in HIST_USERS:
            hist.register_user(localpart, PASSWORD)
        for hs in (portal, portal_proxy):
            hs.register_user("pat", PASSWORD)
        _bind_emails(eng, {"erin": EMAILS["erin"]})
        _bind_emails(hist, {"hugo": EMAILS["hugo"]})
        yield deployment
        assert_no_errors_logged(deployment.all)
    finally:
        stop_all(deployment.all)
        slow.close()
        idp.stop()
        other_idp.stop()
        saml_idp.stop()
        time.sleep(0.5)  # let PostgreSQL see the connections go
        drop_postgres_database(postgres_db)
