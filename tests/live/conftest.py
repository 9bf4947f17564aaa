"""Session-wide live homeservers, started once and in parallel.

- ``target``: the module with Synapse's ``public_baseurl`` set, advertising a
  different spelling of its own URL (``localhost`` instead of ``127.0.0.1``)
  so a test can tell the module's ``well_known`` from Synapse's.
- ``target_nopub``: the module on a Synapse without ``public_baseurl``, with an
  identity server and the legacy ``base_cs_url`` enabled.
- ``vanilla``: the same Synapse without the module, as the reference.
- ``as_compat``: the module with ``appservice_login.errors: synapse``.
- ``as_limited``: the module, a rate-limited appservice and a tight
  ``rc_login.address`` limit, for appservice rate limiting.

All but ``target_nopub`` know the same appservices (see ``APPSERVICES``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.homeserver import (
    REPO_ROOT,
    Homeserver,
    assert_no_errors_logged,
    free_port,
    keep_logs,
    start_all,
    stop_all,
)
from tests.support.deployment import (
    APPSERVICES,
    IDENTITY_SERVER,
    JWT_SECRET,
    LIMITED_BURST,
    PASSWORD,
    Deployment,
)


def _login_types(workdir: Path) -> dict[str, Any]:
    """Config giving a homeserver every kind of login: tokens, JWT, appservice, a module's."""
    files = []
    for appservice in APPSERVICES:
        path = workdir / f"{appservice.id}.yaml"
        path.write_text(yaml.safe_dump(appservice.registration()))
        files.append(str(path))
    return {
        "login_via_existing_session": {"enabled": True, "require_ui_auth": False},
        "jwt_config": {"enabled": True, "secret": JWT_SECRET, "algorithm": "HS256"},
        "app_service_config_files": files,
    }


PIN_MODULE = {"module": "tests.support.pin_login.PinLogin", "config": {}}


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
        as_compat=Homeserver(
            "as-compat",
            workdir,
            module_config={"appservice_login": {"errors": "synapse"}},
            extra_config=login_types,
        ),
        as_limited=Homeserver(
            "as-limited",
            workdir,
            module_config={},
            extra_config={
                **login_types,
                "rc_login": {
                    "address": {"per_second": 0.001, "burst_count": LIMITED_BURST}
                },
            },
        ),
    )
    start_all(servers.all)
    try:
        for hs in servers.all:
            hs.register_user("alice", PASSWORD)
        yield servers
        assert_no_errors_logged(servers.all)
    finally:
        stop_all(servers.all)
