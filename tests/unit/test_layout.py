"""The package's layout rules: where Synapse is imported, and what is public."""

from __future__ import annotations

import ast
from pathlib import Path

import synapse_login_redirect

PACKAGE = Path(synapse_login_redirect.__file__).parent
# Synapse's stable interface for modules; everything else of Synapse is internal.
PUBLIC_SYNAPSE = ("synapse.module_api",)


def _imports(path: Path) -> set[str]:
    """Every module that ``path`` imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _is_within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def _modules(*parts: str) -> list[Path]:
    paths = sorted(PACKAGE.joinpath(*parts).rglob("*.py"))
    assert paths, parts
    return paths


def test_synapse_internals_are_imported_only_by_the_private_module() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in _modules()
        if path.name != "_synapse.py"
        for module in _imports(path)
        if _is_within(module, ("synapse",)) and not _is_within(module, PUBLIC_SYNAPSE)
    }
    assert not offenders


def test_routing_is_pure() -> None:
    """The routing core needs neither Synapse nor Twisted, nor other layers."""
    for path in _modules("routing"):
        imported = _imports(path)
        assert not {m for m in imported if _is_within(m, ("synapse", "twisted"))}
        assert {m for m in imported if _is_within(m, ("synapse_login_redirect",))} <= {
            m for m in imported if _is_within(m, ("synapse_login_redirect.routing",))
        }, path.name


def test_the_public_names_are_the_three_homeserver_yaml_can_give() -> None:
    assert sorted(synapse_login_redirect.__all__) == [
        "LoginRedirect",
        "OidcMappingProvider",
        "SamlMappingProvider",
    ]
    for name in synapse_login_redirect.__all__:
        assert getattr(synapse_login_redirect, name).__doc__


def test_every_public_class_says_what_it_is() -> None:
    undocumented = {
        f"{path.relative_to(PACKAGE)}: {node.name}"
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
        and not node.name.startswith("_")
        and not ast.get_docstring(node)
    }
    assert not undocumented
