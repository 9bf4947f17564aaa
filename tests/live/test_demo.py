"""The README's first command keeps working."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.live.harness import REPO_ROOT

pytestmark = pytest.mark.live


def test_demo_shows_a_login_that_carries_the_redirect() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.live.demo", "--once"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    advertised = re.search(r"told to use (http://localhost:\d+)", result.stdout)
    assert advertised, result.stdout
    assert f'"base_url": "{advertised.group(1)}"' in result.stdout
    assert '"base_cs_url"' in result.stdout
