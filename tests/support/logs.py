"""Waiting for a homeserver's log to show a line."""

from __future__ import annotations

import time

from deploy.homeserver import Homeserver


def wait_for_log(hs: Homeserver, text: bytes, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while text not in hs.log_path.read_bytes():
        assert time.monotonic() < deadline, f"{text!r} not in {hs.name}'s log"
        time.sleep(0.2)
