"""Each HTTP listener serves exactly what its config names, as without the module.

One homeserver with the module and a vanilla twin share a listener layout
that operators use (client, federation, metrics, media, client+federation,
replication); every port of both answers the same table of paths, except that
the module's login responses carry ``well_known``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.homeserver import (
    Homeserver,
    HttpResponse,
    free_port,
    http,
    start_all,
    stop_all,
)

pytestmark = pytest.mark.live

PASSWORD = "listener layout password"
# The extra listeners, in the order Synapse builds them (after the harness's
# own [client] listener): a later, narrower listener must not change an
# earlier one.
LAYOUT = (
    ("federation",),
    ("metrics",),
    ("client", "federation"),
    ("media",),
    ("replication",),
)
PATHS = (
    ("GET", "/_matrix/client/versions"),
    ("GET", "/_matrix/client/v3/login"),
    ("POST", "/_matrix/client/v3/login"),
    ("POST", "/_matrix/client/r0/login"),
    ("GET", "/_matrix/client/v3/login/sso/redirect?redirectUrl=http%3A%2F%2Fc.test"),
    ("GET", "/_matrix/federation/v1/version"),
    ("GET", "/_matrix/key/v2/server"),
    ("GET", "/_matrix/media/v3/config"),
    ("GET", "/_matrix/client/v1/media/config"),
    ("GET", "/_matrix/static/"),
    ("GET", "/_matrix/static/client/login/"),
    ("GET", "/_matrix/static/client/login/js/login.js"),
    ("GET", "/_matrix/nothing/here"),
    ("GET", "/_synapse/metrics"),
    ("GET", "/_synapse/replication/nothing"),
    ("GET", "/health"),
)


def _layout_config() -> tuple[list[int], dict[str, Any]]:
    ports = [free_port() for _ in LAYOUT]
    listeners = [
        {
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "resources": [{"names": list(names), "compress": False}],
        }
        for port, names in zip(ports, LAYOUT)
    ]
    return ports, {"enable_metrics": True, "extra_listeners": listeners}


class Layout:
    """A homeserver with the extra listeners of ``LAYOUT``."""

    def __init__(self, name: str, workdir: Path, module: bool) -> None:
        ports, extra = _layout_config()
        listeners = extra.pop("extra_listeners")
        self.hs = Homeserver(
            name,
            workdir,
            module_config={} if module else None,
            extra_config=extra,
        )
        self.hs.config["listeners"].extend(listeners)
        self.hs.write_config()
        self.ports = [self.hs.port, *ports]

    def answers(self) -> dict[tuple[int, str, str], tuple[int, str | None]]:
        """(listener index, method, path) -> (status, errcode or content kind)."""
        table = {}
        for index, port in enumerate(self.ports):
            for method, path in PATHS:
                body = None
                if method == "POST":
                    body = {
                        "type": "m.login.password",
                        "identifier": {"type": "m.id.user", "user": "lara"},
                        "password": PASSWORD,
                    }
                response = http(method, f"http://127.0.0.1:{port}{path}", body)
                table[(index, method, path)] = (response.status, _kind(response))
        return table


def _kind(response: HttpResponse) -> str | None:
    try:
        body = json.loads(response.body)
    except ValueError:
        return "non-json"
    if isinstance(body, dict):
        return str(body.get("errcode") or "ok")
    return "json"


@pytest.fixture(scope="module")
def layouts() -> Iterator[tuple[Layout, Layout]]:
    with tempfile.TemporaryDirectory(prefix="login-redirect-layout-") as d:
        workdir = Path(d)
        module = Layout("layout", workdir, module=True)
        vanilla = Layout("layout-vanilla", workdir, module=False)
        servers = [module.hs, vanilla.hs]
        start_all(servers)
        try:
            for hs in servers:
                hs.register_user("lara", PASSWORD)
            yield module, vanilla
            # Synapse itself logs this once per extra client listener.
            known = "already registered for server"
            for hs in servers:
                errors = [line for line in hs.logged_errors() if known not in line]
                assert errors == [], f"{hs.name} logged errors:\n" + "\n".join(errors)
        finally:
            stop_all(servers)


def test_every_listener_answers_as_without_the_module(
    layouts: tuple[Layout, Layout],
) -> None:
    module, vanilla = layouts
    expected = vanilla.answers()
    got = module.answers()
    differences = {
        key: (got[key], expected[key]) for key in expected if got[key] != expected[key]
    }
    assert differences == {}, "\n".join(
        f"listener {LAYOUT[i - 1] if i else ('client',)} {m} {p}: "
        f"module {g}, vanilla {e}"
        for (i, m, p), (g, e) in sorted(differences.items())
    )


def test_only_client_listeners_hook_the_login(layouts: tuple[Layout, Layout]) -> None:
    module, _ = layouts
    client_listeners = [0] + [
        i + 1 for i, names in enumerate(LAYOUT) if "client" in names
    ]
    for index, port in enumerate(module.ports):
        response = http(
            "POST",
            f"http://127.0.0.1:{port}/_matrix/client/v3/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "lara"},
                "password": PASSWORD,
            },
        )
        if index in client_listeners:
            assert response.status == 200, (index, response)
            assert "well_known" in response.json()
        else:
            assert response.status == 404, (index, response)


def test_fallback_login_script_is_patched_where_synapse_serves_it(
    layouts: tuple[Layout, Layout],
) -> None:
    module, _ = layouts
    script = http("GET", module.hs.url("/_matrix/static/client/login/js/login.js"))
    assert script.status == 200
    assert b"loginRedirectOnLogin(response)" in script.body
