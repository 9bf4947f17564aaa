"""HTML pages of the module, from Jinja templates that operators can restyle.

Templates are looked up in Synapse's ``custom_template_directory`` first, then
in this package's ``templates/`` (which has its own ``_base.html``: Synapse's
loads a logo from matrix.org), then in Synapse's own (``sso.css``,
``sso_redirect_confirm.html``, ...).

A login token is in the URL of some of these pages, so every answer of the
module's pages and SSO endpoints is sent with ``NO_LEAK_HEADERS``: not cached,
and the URL not sent on as a referrer.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import cast

from synapse.module_api import ModuleApi, respond_with_html
from twisted.web.resource import IResource
from twisted.web.server import Request

from synapse_login_redirect._synapse import (
    SynapseRequest,
    UnrecognizedRequestResource,
    hide_query_args_from_log,
    site_tag_of,
)
from synapse_login_redirect.web.redirect_policy import (
    ClientWhitelist,
    RedirectUrlPolicy,
    parse_client_url,
)

logger = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
NO_LEAK_HEADERS = (
    (b"Referrer-Policy", b"no-referrer"),
    (b"Cache-Control", b"no-store"),
)


class PageError(Exception):
    """An error page to answer a browser with instead of going on: raised
    where a request is refused, rendered by the entry point serving it
    (``Pages.show``)."""

    def __init__(
        self,
        code: int,
        title: str,
        message: str,
        headers: Mapping[bytes, bytes] | None = None,
    ) -> None:
        super().__init__(f"{code} {title}: {message}")
        self.code = code
        self.title = title
        self.message = message
        self.headers = dict(headers or {})


def check_redirect_url(
    policy: RedirectUrlPolicy, url: str, whitelist: ClientWhitelist | None = None
) -> None:
    """Raise ``PageError`` if ``url`` is not an acceptable redirectUrl, or
    would mislead Synapse's own match of ``whitelist``."""
    reason = policy.refusal(url)
    if reason is None and whitelist is not None and whitelist.misleads_synapse(url):
        reason = (
            "it starts like a client address this server trusts, but a "
            "browser would go to another origin or path"
        )
    if reason is None:
        return
    logger.info("Refused SSO redirectUrl %r: %s", url[:200], reason)
    raise PageError(
        400,
        "This app cannot sign in here",
        f"The address the app asked to return to was refused: {reason}. "
        "Please tell the app's developers or your administrator.",
    )


def forbid_leaks(request: Request) -> None:
    """This answer is neither stored nor named as referrer to other sites."""
    for name, value in NO_LEAK_HEADERS:
        request.setHeader(name, value)  # type: ignore[no-untyped-call]


class PageTree(UnrecognizedRequestResource):
    """The module's pages under one path; other paths below it, and every
    path on a listener that does not serve ``client`` (Synapse attaches a
    module's resources to all its listeners), answer as without the module
    (404 ``M_UNRECOGNIZED``).

    Before Synapse logs and renders a request, it gets ``NO_LEAK_HEADERS`` and
    the values of the query arguments in ``secrets`` are blanked in Synapse's
    access log (the handlers still read them).
    """

    def __init__(
        self,
        pages: Mapping[str, IResource],
        secrets: Collection[str],
        site_tags: Collection[str],
    ) -> None:
        """``site_tags``: those of the listeners that serve the pages."""
        super().__init__()  # type: ignore[no-untyped-call]
        for name, page in pages.items():
            self.putChild(name.encode("utf-8"), page)
        self._secrets = tuple(secrets)
        self._site_tags = frozenset(site_tags)

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:  # noqa: N802
        self._guard(request)
        if site_tag_of(request) not in self._site_tags:
            return cast(IResource, UnrecognizedRequestResource())  # type: ignore[no-untyped-call]
        return super().getChildWithDefault(path, request)  # type: ignore[no-any-return,no-untyped-call]

    def render(self, request: SynapseRequest) -> int:
        self._guard(request)
        return super().render(request)

    def _guard(self, request: Request) -> None:
        forbid_leaks(request)
        hide_query_args_from_log(request, self._secrets)


class Pages:
    """Renders the module's HTML pages from the operator's or our templates."""

    def __init__(self, api: ModuleApi) -> None:
        self._realm, self._error, self._confirm = api.read_templates(
            [
                "login_redirect_realm.html",
                "login_redirect_error.html",
                "sso_redirect_confirm.html",
            ],
            str(TEMPLATE_DIR),
        )
        self._server_name = api.server_name

    def show(self, request: SynapseRequest, error: PageError) -> None:
        """Answer with the error page of ``error``."""
        for name, value in error.headers.items():
            request.setHeader(name, value)  # type: ignore[no-untyped-call]
        self.error(request, error.code, error.title, error.message)

    def error(
        self, request: SynapseRequest, code: int, title: str, message: str
    ) -> None:
        html = self._error.render(title=title, message=message)
        _respond(request, code, html)

    def realm(
        self,
        request: SynapseRequest,
        code: int,
        *,
        action: str,
        redirect_url: str,
        idp_id: str | None,
        departments: Sequence[str],
        ask_user: bool,
        error: str | None = None,
    ) -> None:
        html = self._realm.render(
            server_name=self._server_name,
            action=action,
            redirect_url=redirect_url,
            idp_id=idp_id,
            departments=departments,
            ask_user=ask_user,
            error=error,
        )
        _respond(request, code, html)

    def confirm(
        self, request: SynapseRequest, client_url: str, final_url: str, account: str
    ) -> None:
        """Synapse's own "Continue to your account" page, for unlisted clients.

        ``client_url`` must have passed ``check_redirect_url``.
        """
        html = self._confirm.render(
            display_url=parse_client_url(client_url).shown_as,
            redirect_url=final_url,
            server_name=self._server_name,
            new_user=False,
            user_id=account,
            user_profile={"display_name": account},
        )
        _respond(request, 200, html)


def _respond(request: SynapseRequest, code: int, html: str) -> None:
    forbid_leaks(request)
    respond_with_html(request, code, html)
