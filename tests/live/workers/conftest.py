"""A portal run as operators run Synapse: workers, PostgreSQL, Redis, nginx.

- ``portal``: main (client, federation and replication listeners) plus
  ``client1`` and ``client2`` (client listeners), ``federation`` (federation
  listener only) and ``background`` (runs the background tasks, so the
  module's health checks; a ``health`` listener only, to tell it is up). One
  shared ``homeserver.yaml`` with the module in ``modules:``, one worker file
  each. A fresh PostgreSQL database per session; Redis on the default port,
  with a server name (Redis channel) and dbid of its own.
- ``nginx`` in front: ``/_matrix/client`` and ``/_synapse/client`` round-robin
  over ``client1`` and ``client2`` with no stickiness, the rest to main. The
  portal's SSO here is the home-realm page and its completion URL (no
  ``portal_idps``), which keep their state in the database, so no path needs
  pinning to one worker. (Synapse's own SSO callbacks, as for ``portal_idps``,
  would: Synapse's docs ask for one process for SSO.)
- ``eng`` (proxy mode) and ``hist`` (redirect mode): single-process targets
  on sqlite with the module, signing users in with one OpenID Connect
  provider. Pool ``eng: 1, hist: 1``; the portal checks them every second.

Synapse's schema is created before any process starts (workers refuse an
empty database), then all portal processes start at once, so their first
use of the module's own tables is concurrent.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.homeserver import (
    STARTUP_TIMEOUT,
    Homeserver,
    assert_no_errors_logged,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    stop_all,
)
from deploy.workers import (
    Nginx,
    Worker,
    http_listener,
    missing_services,
    prepare_database,
    shared_worker_config,
)
from tests.support.deployment import PASSWORD
from tests.support.idp.oidc import OidcProvider
from tests.support.oidc_config import oidc_provider_config
from tests.support.portal_deployment import PROXY_TIMEOUT
from tests.support.worker_deployment import (
    CLIENT,
    HEALTH_INTERVAL,
    MOVED_USERS,
    NEW_USERS,
    POOL,
    PORTAL_USER,
    WorkerDeployment,
)


def _target(name: str, workdir: Path, idp: OidcProvider, completion: str) -> Homeserver:
    return Homeserver(
        name,
        workdir,
        module_config={},
        extra_config={
            "oidc_providers": [oidc_provider_config(idp, "testidp")],
            "sso": {"client_whitelist": [completion]},
        },
    )


def _portal_config(
    eng: Homeserver, hist: Homeserver, server_name: str
) -> dict[str, Any]:
    return {
        "targets": {
            "eng": {"base_url": eng.base_url, "mode": "proxy", "public_name": "Eng"},
            "hist": {"base_url": hist.base_url, "public_name": "Hist"},
        },
        "portal": {
            "rules": [
                {"server_name": "eng.test", "target": "eng"},
                {"server_name": "hist.test", "target": "hist"},
                # The portal is the homeserver of its own users too.
                {"server_name": server_name, "target": "self"},
            ],
            "pool": POOL,
            "proxy_timeout": PROXY_TIMEOUT,
            "health_check_interval": HEALTH_INTERVAL,
            "sso": {"departments": {"Engineering": "eng", "History": "hist"}},
        },
    }


def _register(hs: Homeserver, localparts: list[str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda lp: hs.register_user(lp, PASSWORD), localparts))


@pytest.fixture(scope="session")
def workers(workdir: Path) -> Iterator[WorkerDeployment]:
    if missing := missing_services():
        pytest.fail(f"a worker deployment needs {', '.join(missing)}")
    # Apart from the other fixtures' homeservers of the same names.
    workdir = workdir / "workers"
    workdir.mkdir()
    nginx_port = free_port()
    public = f"http://127.0.0.1:{nginx_port}"
    idp = OidcProvider({"erin": {"name": "Erin"}, "hugo": {"name": "Hugo"}}).start()
    completion = f"{public}/_synapse/client/login_redirect/complete"
    eng = _target("eng", workdir, idp, completion)
    hist = _target("hist", workdir, idp, completion)
    postgres_db = f"login_redirect_workers_{nginx_port}"
    create_postgres_database(postgres_db)
    main_port, replication_port = free_port(), free_port()
    # Redis relays by server name: one of its own per deployment.
    server_name = f"wportal{nginx_port}.test"
    main = Homeserver(
        "wportal",
        workdir,
        port=main_port,
        postgres_db=postgres_db,
        module_config=_portal_config(eng, hist, server_name),
        extra_config={
            "server_name": server_name,
            "public_baseurl": public + "/",
            "listeners": [
                http_listener(main_port, "client", "federation"),
                http_listener(replication_port, "replication"),
            ],
            **shared_worker_config(replication_port, nginx_port % 16),
            "run_background_tasks_on": "background",
            "sso": {"client_whitelist": [CLIENT]},
        },
    )
    client1 = Worker(main, "client1", ["client"])
    client2 = Worker(main, "client2", ["client"])
    federation = Worker(main, "federation", ["federation"])
    background = Worker(main, "background", ["health"])
    nginx = Nginx(
        workdir, main=main, client_workers=[client1, client2], port=nginx_port
    )
    portal = [main, client1, client2, federation, background]
    try:
        for hs in (eng, hist):
            hs.start()
        prepare_database(main)
        for hs in portal:
            hs.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        for hs in [*portal, eng, hist]:
            hs.wait_ready(deadline)
        nginx.start()
        deployment = WorkerDeployment(
            main,
            client1,
            client2,
            federation,
            background,
            nginx,
            eng,
            hist,
            postgres_db,
            idp,
            time.time(),
        )
        for hs in (eng, hist):
            _register(hs, ["erin", "hugo", *NEW_USERS])
        _register(hist, list(MOVED_USERS))
        _register(main, [PORTAL_USER])
        yield deployment
        assert_no_errors_logged(deployment.homeservers)
    finally:
        nginx.stop()
        stop_all([*portal, eng, hist])
        idp.stop()
        time.sleep(0.5)  # let PostgreSQL see the connections go
        drop_postgres_database(postgres_db)
