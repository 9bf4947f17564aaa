"""The Synapse releases this module supports, read from ``supported_synapse.txt``.

That file is the one place the range is written: it is also the package's
``synapse`` extra (pyproject.toml). Only the standard library here: ``dev.py``
reads this file without importing Synapse.
"""

from pathlib import Path

# The requirement file, shipped inside the package.
REQUIREMENT_FILE = Path(__file__).with_name("supported_synapse.txt")
_PREFIX = "matrix-synapse >= "


def _oldest(requirement_file: Path) -> str:
    """The version in the file's one line, ``matrix-synapse >= <version>``."""
    lines = requirement_file.read_text(encoding="utf-8").splitlines()
    (requirement,) = (line for line in lines if line and not line.startswith("#"))
    if not requirement.startswith(_PREFIX):
        raise ValueError(f"{requirement_file}: expected {_PREFIX}<version>")
    return requirement.removeprefix(_PREFIX)


# The oldest supported Synapse release; every newer one is supported too.
SUPPORTED_SYNAPSE = _oldest(REQUIREMENT_FILE)
