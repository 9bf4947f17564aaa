"""A target's ``proxy_url``: where the portal posts, apart from the ``base_url``
clients are told (issue 11, item 9).

``backend`` serves clients on a public listener without ``x_forwarded``, and
the portal on an internal listener with ``x_forwarded: true``, as the README
advises. The portal posts logins and health checks to the internal listener
(``proxy_url``) and sends clients to the public one (``base_url``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attr
import pytest

from deploy.homeserver import (
    Homeserver,
    assert_no_errors_logged,
    free_port,
    http,
    start_all,
    stop_all,
)
from tests.support.deployment import PASSWORD

pytestmark = pytest.mark.live

LOGIN = "/_matrix/client/v3/login"
CLIENT_IP = "203.0.113.7"
# Synapse 1.16x logs this ERROR for a second client listener, module or not.
SECOND_LISTENER = "Metric named cache_lru_cache_sync_valid_filter_"


@attr.s(frozen=True, auto_attribs=True)
class Split:
    backend: Homeserver
    internal_port: int
    portal: Homeserver


def listener(port: int, *, x_forwarded: bool) -> dict[str, Any]:
    return {
        "port": port,
        "bind_addresses": ["127.0.0.1"],
        "type": "http",
        "x_forwarded": x_forwarded,
        "resources": [{"names": ["client"], "compress": False}],
    }


@pytest.fixture(scope="module")
def split(workdir: Path) -> Iterator[Split]:
    public, internal = free_port(), free_port()
    backend = Homeserver(
        "backend",
        workdir,
        port=public,
        module_config={},
        extra_config={
            "listeners": [
                listener(public, x_forwarded=False),
                listener(internal, x_forwarded=True),
            ]
        },
    )
    portal = Homeserver(
        "portal-split",
        workdir,
        module_config={
            "targets": {
                "backend": {
                    "base_url": backend.base_url,
                    "proxy_url": f"http://127.0.0.1:{internal}",
                    "mode": "proxy",
                }
            },
            "portal": {"pool": {"backend": 1}, "health_check_interval": 1},
        },
    )
    start_all([backend, portal])
    try:
        backend.register_user("bea", PASSWORD)
        yield Split(backend, internal, portal)
        assert_no_errors_logged([portal])
        errors = [e for e in backend.logged_errors() if SECOND_LISTENER not in e]
        assert not errors, errors
    finally:
        stop_all([backend, portal])


def requests_on(hs: Homeserver, port: int, request: str) -> list[str]:
    """The access log lines of ``hs``'s listener on ``port`` for ``request``."""
    logger = f"synapse.access.http.{port} "
    lines = hs.log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if logger in line and f'"{request} ' in line]


def test_logins_go_to_proxy_url_and_clients_to_base_url(split: Split) -> None:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "bea"},
        "password": PASSWORD,
    }
    headers = {"X-Forwarded-For": CLIENT_IP}
    answer = http("POST", split.portal.url(LOGIN), body, headers=headers)
    assert answer.status == 200, answer
    advertised = answer.json()["well_known"]["m.homeserver"]["base_url"]
    assert advertised == split.backend.base_url
    internal = requests_on(split.backend, split.internal_port, f"POST {LOGIN}")
    assert len(internal) == 1, internal
    assert f" - {CLIENT_IP} - " in internal[0]  # trusted X-Forwarded-For
    assert requests_on(split.backend, split.backend.port, f"POST {LOGIN}") == []


def test_health_checks_go_to_proxy_url(split: Split) -> None:
    versions = "GET /_matrix/client/versions"
    deadline = time.monotonic() + 15
    while not requests_on(split.backend, split.internal_port, versions):
        assert time.monotonic() < deadline, "no health check reached proxy_url"
        time.sleep(0.2)
    assert requests_on(split.backend, split.backend.port, versions) == []
