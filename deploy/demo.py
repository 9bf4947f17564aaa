"""A small local deployment on sqlite and loopback: a portal and two targets.

python3 dev.py demo          keep the homeservers running until Ctrl-C
python3 dev.py demo --once   show the logins and stop

``eng`` is reached by redirect (307), ``hist`` by proxy; both log in at the
portal's one address and are told where to go from then on.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from deploy.homeserver import Homeserver, HttpResponse, http, start_all, stop_all

PASSWORD = "demo-password"
USERS = {"eng": "alice", "hist": "bob"}


def _login_body(user: str) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": PASSWORD,
    }


def _show(response: HttpResponse) -> None:
    shown = {k: v for k, v in response.json().items() if k != "access_token"}
    print(f"  {response.status} {json.dumps(shown, indent=2)}".replace("\n", "\n  "))


def _demo_login(portal: Homeserver, user: str) -> None:
    url = portal.url("/_matrix/client/v3/login")
    body = _login_body(user)
    print(f"\nPOST {url}  {json.dumps(body)}")
    response = http("POST", url, body)
    if response.status == 307:
        location = response.headers["location"]
        print(f"  307 Location: {location}\nPOST {location}  (the client re-posts)")
        response = http("POST", location, body)
    _show(response)
    if response.status == 200:
        homeserver = response.json()["well_known"]["m.homeserver"]["base_url"]
        print(f"  -> {user} is logged in on {homeserver} and uses it from now on.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="stop after the logins")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="login-redirect-demo-") as d:
        workdir = Path(d)
        targets = {name: Homeserver(name, workdir, module_config={}) for name in USERS}
        portal = Homeserver(
            "portal",
            workdir,
            module_config={
                "targets": {
                    "eng": {"base_url": targets["eng"].base_url, "mode": "redirect"},
                    "hist": {"base_url": targets["hist"].base_url, "mode": "proxy"},
                },
                "portal": {
                    "rules": [
                        {"server_name": hs.server_name, "target": name}
                        for name, hs in targets.items()
                    ],
                },
            },
        )
        servers = [portal, *targets.values()]
        print(f"Starting a portal and two targets in {workdir} ...")
        start_all(servers)
        try:
            for name, user in USERS.items():
                targets[name].register_user(user, PASSWORD)
            for name, user in USERS.items():
                _demo_login(portal, f"@{user}:{targets[name].server_name}")
            if not args.once:
                print(f"\nRunning. Log in at the portal, {portal.base_url}, as")
                for name, user in USERS.items():
                    print(f"  @{user}:{targets[name].server_name} / {PASSWORD}")
                print("Ctrl-C stops the homeservers.")
                signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
                signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            stop_all(servers)


if __name__ == "__main__":
    main()
