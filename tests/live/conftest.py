"""Session-wide live homeservers, started once and in parallel.

- ``target``: the module with Synapse's ``public_baseurl`` set, advertising a
  different spelling of its own URL (``localhost`` instead of ``127.0.0.1``)
  so a test can tell the module's ``well_known`` from Synapse's.
- ``target_nopub``: the module on a Synapse without ``public_baseurl``, with an
  identity server and the legacy ``base_cs_url`` enabled.
- ``vanilla``: the same Synapse without the module, as the reference.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attr
import pytest
import yaml

from tests.live.harness import (
    REPO_ROOT,
    Homeserver,
    free_port,
    keep_logs,
    start_all,
    stop_all,
)

PASSWORD = "correct horse battery staple"
IDENTITY_SERVER = "https://id.example.org"
JWT_SECRET = "jwt-secret-for-tests"
AS_TOKEN = "as-token-bridge"
BRIDGE_USER_PREFIX = "bridge_"


def _login_types(workdir: Path) -> dict[str, Any]:
    """Config giving a homeserver every kind of login: tokens, JWT, appservice, a module's."""
    registration = workdir / "bridge.yaml"
    registration.write_text(
        yaml.safe_dump(
            {
                "id": "bridge",
                "url": None,
                "as_token": AS_TOKEN,
                "hs_token": "hs-token-bridge",
                "sender_localpart": "bridgebot",
                "rate_limited": False,
                "namespaces": {
                    "users": [{"exclusive": True, "regex": f"@{BRIDGE_USER_PREFIX}.*"}],
                    "aliases": [],
                    "rooms": [],
                },
            }
        )
    )
    return {
        "login_via_existing_session": {"enabled": True, "require_ui_auth": False},
        "jwt_config": {"enabled": True, "secret": JWT_SECRET, "algorithm": "HS256"},
        "app_service_config_files": [str(registration)],
    }


PIN_MODULE = {"module": "tests.live.pin_login.PinLogin", "config": {}}


@attr.s(frozen=True, auto_attribs=True)
class Deployment:
    target: Homeserver
    target_nopub: Homeserver
    vanilla: Homeserver

    @property
    def advertised_target_url(self) -> str:
        return f"http://localhost:{self.target.port}"

    @property
    def all(self) -> list[Homeserver]:
        return [self.target, self.target_nopub, self.vanilla]


@pytest.fixture(scope="session")
def workdir(request: pytest.FixtureRequest) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="login-redirect-") as d:
        path = Path(d)
        yield path
        if request.session.testsfailed:
            destination = REPO_ROOT / "test-logs"
            keep_logs(path, destination)
            print(f"\nHomeserver logs kept in {destination}")


@pytest.fixture(scope="session")
def deployment(workdir: Path) -> Iterator[Deployment]:
    target_port = free_port()
    nopub_port = free_port()
    login_types = _login_types(workdir)
    servers = Deployment(
        target=Homeserver(
            "target",
            workdir,
            port=target_port,
            module_config={"base_url": f"http://localhost:{target_port}/"},
            extra_config=login_types,
            extra_modules=[PIN_MODULE],
        ),
        target_nopub=Homeserver(
            "target-nopub",
            workdir,
            port=nopub_port,
            public_baseurl=False,
            module_config={
                "base_url": f"http://localhost:{nopub_port}",
                "identity_server": IDENTITY_SERVER,
                "base_cs_url": True,
            },
        ),
        vanilla=Homeserver(
            "vanilla",
            workdir,
            module_config=None,
            extra_config=login_types,
            extra_modules=[PIN_MODULE],
        ),
    )
    start_all(servers.all)
    try:
        for hs in servers.all:
            hs.register_user("alice", PASSWORD)
        yield servers
    finally:
        stop_all(servers.all)
