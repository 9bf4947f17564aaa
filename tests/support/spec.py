"""Validate responses against the Matrix spec's OpenAPI definitions in shared/spec."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_DIR = Path(__file__).resolve().parents[3] / "shared" / "spec"


def _load(uri: str) -> Resource[Any]:
    path = Path(uri.removeprefix("file://"))
    return Resource.from_contents(
        yaml.safe_load(path.read_text()), default_specification=DRAFT202012
    )


@cache
def _validator(
    filename: str, method: str, status: str, path: str
) -> Draft202012Validator:
    spec_file = SPEC_DIR / filename
    if not spec_file.exists():
        raise FileNotFoundError(
            f"{spec_file} is missing: the spec definitions live in shared/spec "
            "beside the checkout"
        )
    document = yaml.safe_load(spec_file.read_text())
    operation = document["paths"][path][method]
    schema = dict(
        operation["responses"][status]["content"]["application/json"]["schema"]
    )
    schema["$id"] = spec_file.as_uri()
    return Draft202012Validator(schema, registry=Registry(retrieve=_load))  # type: ignore[call-arg]


def validate(body: Any, *, filename: str, method: str, status: str, path: str) -> None:
    """Raise jsonschema.ValidationError when ``body`` breaks the spec's schema."""
    _validator(filename, method, status, path).validate(body)


def validate_login_response(body: Any) -> None:
    validate(body, filename="login.yaml", method="post", status="200", path="/login")


def validate_login_flows(body: Any) -> None:
    validate(body, filename="login.yaml", method="get", status="200", path="/login")
