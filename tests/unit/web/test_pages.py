"""Pages that carry a login token leak nothing (issue 11, item 8): headers,
no third-party resources, the token blanked in Synapse's access log."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import quote

import synapse
from hypothesis import given, settings
from hypothesis import strategies as st
from synapse.config._base import Config
from synapse.module_api import ModuleApi, SynapseRequest
from twisted.web.http import parse_qs
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from synapse_login_redirect._synapse import (
    UnrecognizedRequestResource,
    hide_query_args_from_log,
)
from synapse_login_redirect.web.pages import (
    NO_LEAK_HEADERS,
    TEMPLATE_DIR,
    Pages,
    PageTree,
)

SYNAPSE_TEMPLATES = Path(synapse.__file__).resolve().parent / "res" / "templates"
# What a page loads (not a link the user may follow).
RESOURCE = re.compile(
    r"""(?:\bsrc(?:set)?\s*=\s*["']?|<link\b[^>]*\bhref\s*=\s*["']?"""
    r"""|\burl\(\s*["']?|@import\s+["']?)([^"'\s>)]+)""",
    re.IGNORECASE,
)


class FakeRequest:
    def __init__(self, uri: bytes = b"/", site_tag: str = "client") -> None:
        self.uri = uri
        self.synapse_site = SimpleNamespace(site_tag=site_tag)
        self.headers: dict[bytes, bytes] = {}
        self.code = 0
        self.body = b""
        self._disconnected = False

    def setHeader(self, name: bytes, value: bytes) -> None:  # noqa: N802
        self.headers[name] = value

    def setResponseCode(self, code: int) -> None:  # noqa: N802
        self.code = code

    def write(self, data: bytes) -> None:
        self.body += data

    def finish(self) -> None:
        pass


class _TemplateApi:
    """``ModuleApi.read_templates`` as Synapse does it, without a homeserver."""

    server_name = "portal.example"

    def read_templates(self, filenames: list[str], directory: str) -> Any:
        config = SimpleNamespace(
            path_exists=lambda path: Path(path).exists(),
            default_template_dir=str(SYNAPSE_TEMPLATES),
            root=SimpleNamespace(
                server=SimpleNamespace(public_baseurl="https://portal.example/")
            ),
        )
        return Config.read_templates(cast(Config, config), filenames, [directory])


def _rendered_pages() -> dict[str, FakeRequest]:
    pages = Pages(cast(ModuleApi, _TemplateApi()))
    answers = {name: FakeRequest() for name in ("error", "realm", "confirm")}

    def req(name: str) -> SynapseRequest:
        return cast(SynapseRequest, answers[name])

    pages.error(req("error"), 403, "Sign-in failed", "Please start again.")
    pages.realm(
        req("realm"),
        200,
        action="/_synapse/client/login_redirect/realm",
        redirect_url="https://app.example/cb",
        idp_id=None,
        departments=["Engineering"],
        ask_user=True,
    )
    pages.confirm(
        req("confirm"),
        "https://app.example/cb",
        "https://app.example/cb?loginToken=secret",
        "Engineering",
    )
    return answers


def test_pages_load_nothing_from_other_sites_and_send_no_leak_headers() -> None:
    for name, answer in _rendered_pages().items():
        text = answer.body.decode("utf-8")
        assert "<body>" in text, name
        resources = [
            url
            for url in RESOURCE.findall(text)
            if not url.startswith("data:")
            and (":" in url.split("/")[0] or url.startswith("//"))
        ]
        assert resources == [], name
        for header, value in NO_LEAK_HEADERS:
            assert answer.headers[header] == value, name


def test_no_template_of_the_module_names_another_site() -> None:
    for path in TEMPLATE_DIR.glob("*.html"):
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", path.read_text())


def _tree() -> PageTree:
    page = cast(IResource, Resource())
    return PageTree({"complete": page}, secrets=("loginToken",), site_tags={"client"})


def test_page_tree_serves_nothing_on_other_listeners() -> None:
    request = FakeRequest(b"/_synapse/client/login_redirect/complete", "federation")
    child = _tree().getChildWithDefault(b"complete", cast(Request, request))
    assert type(child) is UnrecognizedRequestResource


def test_page_tree_blanks_the_token_and_sets_headers_before_rendering() -> None:
    request = FakeRequest(
        b"/_synapse/client/login_redirect/complete?session=s&loginToken=T"
    )
    child = _tree().getChildWithDefault(b"complete", cast(Request, request))
    assert isinstance(child, Resource)
    assert request.uri.endswith(b"?session=s&loginToken=<redacted>")
    for header, value in NO_LEAK_HEADERS:
        assert request.headers[header] == value


def test_page_tree_unknown_child_answers_as_without_the_module() -> None:
    request = FakeRequest(b"/_synapse/client/login_redirect/nope?loginToken=secret")
    child = _tree().getChildWithDefault(b"nope", cast(Request, request))
    assert isinstance(child, UnrecognizedRequestResource)
    assert b"secret" not in request.uri


_NAMES = st.sampled_from(
    ["loginToken", "login%54oken", "loginToken%00", "logintoken", "session", "x", ""]
)
_VALUES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="&;#"), max_size=12
).map(lambda v: quote(v, safe="=%+<>"))
_SEGMENTS = st.one_of(
    st.tuples(_NAMES, _VALUES).map(lambda nv: f"{nv[0]}={nv[1]}"),
    _NAMES,
    _VALUES,
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_SEGMENTS, st.sampled_from("&;")), max_size=6))
def test_hidden_arguments_never_keep_a_value(
    segments: list[tuple[str, str]],
) -> None:
    """Whatever the query, Twisted's parse of the rewritten URI (the one that
    gives ``request.args``) has no value for ``loginToken`` but ``<redacted>``,
    and every other argument as before."""
    query = "".join(segment + separator for segment, separator in segments).encode()
    request = FakeRequest(b"/p?" + query)
    hide_query_args_from_log(cast(Request, request), ["loginToken"])
    path, _, rewritten = request.uri.partition(b"?")
    assert path == b"/p"
    before = parse_qs(query, 1)
    after = parse_qs(rewritten, 1)
    assert set(after.get(b"loginToken", [])) <= {b"<redacted>"}
    assert len(after.get(b"loginToken", [])) == len(before.get(b"loginToken", []))
    before.pop(b"loginToken", None)
    after.pop(b"loginToken", None)
    assert after == before


def test_uri_without_query_is_left_alone() -> None:
    request = FakeRequest(b"/_synapse/client/login_redirect/complete")
    hide_query_args_from_log(cast(Request, request), ["loginToken"])
    assert request.uri == b"/_synapse/client/login_redirect/complete"
