"""The supported Synapse range is named once; everything else agrees with it."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import dev
from synapse_login_redirect._synapse import release
from synapse_login_redirect.supported import SUPPORTED_SYNAPSE

ROOT = Path(__file__).resolve().parents[2]


def _read(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / name)
    return parser


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def test_installing_the_module_never_installs_or_changes_synapse() -> None:
    options = _read("setup.cfg")["options"]
    assert not [
        r for r in _lines(options["install_requires"]) if "synapse" in r.lower()
    ]


def test_the_synapse_extra_names_the_supported_range() -> None:
    extras = _read("setup.cfg")["options.extras_require"]
    assert _lines(extras["synapse"]) == [f"matrix-synapse >= {SUPPORTED_SYNAPSE}"]
    # The tests run on whichever Synapse the environment has.
    synapse = [r for r in _lines(extras["test"]) if r.startswith("matrix-synapse")]
    assert synapse == ["matrix-synapse[saml2,oidc,postgres,redis]"]


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
