"""A small local deployment on sqlite and loopback, and a login through it.

python3 dev.py demo          keep the homeservers running until Ctrl-C
python3 dev.py demo --once   show the login and stop
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path

from tests.live.harness import Homeserver, free_port, start_all, stop_all

USER, PASSWORD = "alice", "demo-password"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="stop after the demo login")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="login-redirect-demo-") as workdir:
        port = free_port()
        advertised = f"http://localhost:{port}"
        target = Homeserver(
            "eng",
            Path(workdir),
            port=port,
            module_config={"base_url": advertised, "base_cs_url": True},
        )
        print(f"Starting Synapse with synapse-login-redirect in {workdir} ...")
        start_all([target])
        try:
            target.register_user(USER, PASSWORD)
            body = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": USER},
                "password": PASSWORD,
            }
            print(f"\nPOST {target.url('/_matrix/client/v3/login')}")
            response = target.password_login(USER, PASSWORD)
            shown = {k: v for k, v in response.json().items() if k != "access_token"}
            print(f"{response.status}\n{json.dumps(shown, indent=2)}")
            print(f"\nThe client is told to use {advertised} from now on.")
            print(
                f"Try it yourself: log in as {USER} / {PASSWORD} at {target.base_url}"
            )
            print(f"(request body: {json.dumps(body)})")
            if not args.once:
                print("\nRunning; Ctrl-C stops the homeserver.")
                signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
                signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            stop_all([target])


if __name__ == "__main__":
    main()
