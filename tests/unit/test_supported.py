"""The supported Synapse range is written once; everything else agrees with it."""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path
from typing import Any

import dev
from synapse_login_redirect import supported
from synapse_login_redirect._synapse import release
from synapse_login_redirect.supported import SUPPORTED_SYNAPSE

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _read(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / name)
    return parser


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _requirements(path: Path) -> list[str]:
    return [r for r in _lines(path.read_text()) if not r.startswith("#")]


def _pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)


def _setuptools() -> dict[str, Any]:
    table: dict[str, Any] = _pyproject()["tool"]["setuptools"]
    return table


def _extra_files(extra: str) -> list[str]:
    files: list[str] = _setuptools()["dynamic"]["optional-dependencies"][extra]["file"]
    return files


def test_installing_the_module_never_installs_or_changes_synapse() -> None:
    dependencies = _pyproject()["project"]["dependencies"]
    assert dependencies
    assert not [r for r in dependencies if "synapse" in r.lower()]


def test_the_synapse_extra_is_the_file_the_module_reads() -> None:
    assert _extra_files("synapse") == [
        supported.REQUIREMENT_FILE.relative_to(ROOT).as_posix()
    ]
    # Installed with the package, so the module finds it at run time.
    package_data = _setuptools()["package-data"]["synapse_login_redirect"]
    assert supported.REQUIREMENT_FILE.name in package_data
    assert _requirements(supported.REQUIREMENT_FILE) == [
        f"matrix-synapse >= {SUPPORTED_SYNAPSE}"
    ]


def test_the_tests_run_on_the_environments_synapse() -> None:
    (test_file,) = _extra_files("test")
    synapse = [
        r for r in _requirements(ROOT / test_file) if r.startswith("matrix-synapse")
    ]
    assert synapse == [dev.SYNAPSE_EXTRAS]


def test_dev_py_tests_the_oldest_supported_and_a_later_release() -> None:
    assert dev.SYNAPSE_MIN == SUPPORTED_SYNAPSE
    assert release(SUPPORTED_SYNAPSE) < release(dev.SYNAPSE_MID)


def test_tox_envs_match_dev_py() -> None:
    tox = _read("tox.ini")
    assert _lines(tox["testenv:synapse-min"]["deps"]) == [
        f"{dev.SYNAPSE_EXTRAS}=={SUPPORTED_SYNAPSE}",
        *dev.OLD_SYNAPSE_PINS,
    ]
    middle = tox["testenv:synapse-mid"]
    assert _lines(middle["deps"]) == [
        f"{dev.SYNAPSE_EXTRAS}=={dev.SYNAPSE_MID}",
        *dev.OLD_SYNAPSE_PINS,
    ]
    assert middle["commands"] == f"pytest {{posargs:{dev.LIVE_TESTS}}}"


def test_readme_states_the_supported_range() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Supported Synapse versions", 1)[1].split("\n## ", 1)[0]
    assert f"Synapse {SUPPORTED_SYNAPSE} and newer" in section
    assert f"matrix-synapse >= {SUPPORTED_SYNAPSE}" in section
    versions = set(re.findall(r"\b\d+\.\d+\.\d+\b", section))
    assert versions == {SUPPORTED_SYNAPSE, dev.SYNAPSE_MID}, versions
