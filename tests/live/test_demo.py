"""The README's first command keeps working."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from deploy.homeserver import REPO_ROOT

pytestmark = pytest.mark.live


def test_demo_shows_logins_routed_through_the_portal() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.demo", "--once"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    redirect = re.search(r"307 Location: (http://127.0.0.1:\d+)/_matrix", out)
    assert redirect, out
    landed = re.findall(r"@(\w+):(\w+)\.test is logged in on (\S+) ", out)
    assert [(u, hs) for u, hs, _ in landed] == [("alice", "eng"), ("bob", "hist")], out
    assert landed[0][2] == redirect.group(1)
    assert landed[1][2] != redirect.group(1)
    assert out.count('"user_id": "@alice:eng.test"') == 1
    assert out.count('"user_id": "@bob:hist.test"') == 1
