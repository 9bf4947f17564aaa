#!/usr/bin/env python3
"""Developer entry point: needs only Python 3, installs the rest into ``.venv``.

python3 dev.py demo    start a local deployment and show a redirected login
python3 dev.py test    lint, type-check and run the whole test suite on the
                       newest Synapse and on the oldest supported one, and the
                       live tests on a release in between (pytest arguments
                       given after "test" replace that selection in each run)
python3 dev.py bench   benchmarks against vanilla Synapse (see BENCHMARKS.md)
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
# The oldest supported Synapse, as supported.py reads it from the one place it
# is written (no Synapse import needed); tests/unit/test_supported.py
# keeps tox.ini and the README in step.
SYNAPSE_MIN = str(
    runpy.run_path(str(ROOT / "synapse_login_redirect" / "supported.py"))[
        "SUPPORTED_SYNAPSE"
    ]
)
VENV_MIN = ROOT / ".venv-synapse-min"
# A release between the oldest and the newest; the live tests run on it too.
SYNAPSE_MID = "1.150.0"
VENV_MID = ROOT / ".venv-synapse-mid"
# Pins that newer Synapse releases make themselves: Synapse older than 1.146
# does not import with prometheus-client 0.24 or newer, and its Redis
# replication (workers) fails with txredisapi 1.6.
OLD_SYNAPSE_PINS = ("prometheus-client<0.24", "txredisapi<1.6")
SYNAPSE_EXTRAS = "matrix-synapse[saml2,oidc,postgres,redis]"
LIVE_TESTS = "tests/live"
# Debian packages the tests use: the browser, xmlsec1 for SAML signatures,
# Node.js for matrix-js-sdk, and nginx as the worker deployment's reverse proxy.
DEBIAN_PACKAGES = {
    "chromium": "/usr/bin/chromium",
    "nginx": "/usr/sbin/nginx",
    "xmlsec1": "/usr/bin/xmlsec1",
    "nodejs": "/usr/bin/node",
    "npm": "/usr/bin/npm",
}
# The npm project of the matrix-js-sdk tests.
JS_TESTS = ROOT / "tests" / "live" / "js"


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True)


def _ensure_venv(path: Path, *requirements: str) -> Path:
    """Create a venv and install the checkout (editable) and ``requirements``."""
    python = path / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(path)
    _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(python, "-m", "pip", "install", "--quiet", "-e", ".[dev]", *requirements)
    return python


def _ensure_debian_packages() -> None:
    """Install the missing ones of DEBIAN_PACKAGES (needs root or sudo)."""
    missing = [
        name for name, path in DEBIAN_PACKAGES.items() if not Path(path).exists()
    ]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    install = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, check=False).returncode != 0:
        _run(*sudo, "apt-get", "update")
        _run(*install)


def _test(pytest_args: list[str]) -> None:
    _ensure_debian_packages()
    _run("npm", "ci", "--prefix", JS_TESTS, "--no-audit", "--no-fund", "--quiet")
    _run(PYTHON, "-m", "ruff", "check", ".")
    _run(PYTHON, "-m", "ruff", "format", "--check", ".")
    _run(PYTHON, "-m", "mypy")
    _run(PYTHON, "-m", "pytest", *pytest_args)
    oldest = _ensure_venv(
        VENV_MIN, f"{SYNAPSE_EXTRAS}=={SYNAPSE_MIN}", *OLD_SYNAPSE_PINS
    )
    print(f"Again with the oldest supported Synapse, {SYNAPSE_MIN}:", flush=True)
    _run(oldest, "-m", "pytest", *pytest_args)
    middle = _ensure_venv(
        VENV_MID, f"{SYNAPSE_EXTRAS}=={SYNAPSE_MID}", *OLD_SYNAPSE_PINS
    )
    print(f"The live tests with Synapse {SYNAPSE_MID}:", flush=True)
    _run(middle, "-m", "pytest", *(pytest_args or [LIVE_TESTS]))


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("demo", "test", "bench"):
        sys.exit(__doc__)
    _ensure_venv(VENV)
    if argv[0] == "demo":
        os.execv(PYTHON, [str(PYTHON), "-m", "deploy.demo", *argv[1:]])
    if argv[0] == "bench":
        os.execv(PYTHON, [str(PYTHON), "-m", "benchmarks", *argv[1:]])
    try:
        _test(argv[1:])
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode)


if __name__ == "__main__":
    main(sys.argv[1:])
