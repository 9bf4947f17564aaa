"""The benchmark command runs, and its smoke run meets no errors (timings are not judged)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy.homeserver import REPO_ROOT

pytestmark = pytest.mark.live

ITEMS = ("1. ", "2a. ", "2b. ", "3. ", "4. ", "5. ", "6. ")


def test_quick_benchmark_runs_without_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for item in ITEMS:
        assert any(line.startswith(item) for line in lines), (item, result.stdout)
    assert "errors 0 via portal, 0 direct" in result.stdout
