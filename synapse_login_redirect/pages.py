"""HTML pages of the module, from Jinja templates that operators can restyle.

Templates are looked up in Synapse's ``custom_template_directory`` first, then
in this package's ``templates/``, then in Synapse's own (``_base.html``,
``sso.css``, ``sso_redirect_confirm.html``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from synapse.module_api import ModuleApi, SynapseRequest, respond_with_html

from synapse_login_redirect.redirect_policy import (
    ClientWhitelist,
    RedirectUrlPolicy,
    parse_client_url,
)

logger = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


class Pages:
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

    def refuse_redirect_url(
        self,
        request: SynapseRequest,
        policy: RedirectUrlPolicy,
        url: str,
        whitelist: ClientWhitelist | None = None,
    ) -> bool:
        """Answer with an error page if ``url`` is not an acceptable redirectUrl,
        or would mislead Synapse's own match of ``whitelist``."""
        reason = policy.refusal(url)
        if reason is None and whitelist is not None and whitelist.misleads_synapse(url):
            reason = (
                "it starts like a client address this server trusts, but a "
                "browser would go to another origin or path"
            )
        if reason is None:
            return False
        logger.info("Refused SSO redirectUrl %r: %s", url[:200], reason)
        self.error(
            request,
            400,
            "This app cannot sign in here",
            f"The address the app asked to return to was refused: {reason}. "
            "Please tell the app's developers or your administrator.",
        )
        return True

    def error(
        self, request: SynapseRequest, code: int, title: str, message: str
    ) -> None:
        html = self._error.render(title=title, message=message)
        respond_with_html(request, code, html)

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
        respond_with_html(request, code, html)

    def confirm(
        self, request: SynapseRequest, client_url: str, final_url: str, account: str
    ) -> None:
        """Synapse's own "Continue to your account" page, for unlisted clients.

        ``client_url`` must have passed ``refuse_redirect_url``.
        """
        html = self._confirm.render(
            display_url=parse_client_url(client_url).shown_as,
            redirect_url=final_url,
            server_name=self._server_name,
            new_user=False,
            user_id=account,
            user_profile={"display_name": account},
        )
        respond_with_html(request, 200, html)
