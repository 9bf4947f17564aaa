"""An OIDC user mapping provider for a portal that routes on the IdP's claims.

Synapse's default (Jinja) mapping, which also keeps the claims a login brings,
by IdP and remote user id, for the portal to route once the sign-in comes back
(``SsoPortal.bounce``, which takes them once). Set it as
``user_mapping_provider.module`` of the portal's own entries in
``oidc_providers``; its ``config`` is Synapse's.
"""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi

from synapse_login_redirect._synapse import (
    JinjaOidcMappingProvider,
    check_synapse_support,
    oidc_idp_id,
)
from synapse_login_redirect.store.idp_claims import IdpClaimTable
from synapse_login_redirect.store.tables import module_tables


class OidcMappingProvider(JinjaOidcMappingProvider):
    """Synapse's default OIDC mapping, which also keeps the claims for routing."""

    def __init__(self, config: Any, module_api: ModuleApi) -> None:
        check_synapse_support(module_api)
        super().__init__(config, module_api)
        self._idp_id = oidc_idp_id(module_api, config)
        self._claims = IdpClaimTable(module_tables(module_api))

    async def get_extra_attributes(self, userinfo: Any, token: Any) -> Any:
        """Called on every login, new user or not: keep the claims."""
        await self._claims.remember_claims(
            self._idp_id,
            str(self.get_remote_user_id(userinfo)),
            claims_as_attributes(userinfo),
        )
        return await super().get_extra_attributes(userinfo, token)


def claims_as_attributes(claims: Any) -> dict[str, list[str]]:
    """String, number and boolean claims (or lists of them), as lists of strings."""
    attributes: dict[str, list[str]] = {}
    for name, value in dict(claims).items():
        values = value if isinstance(value, list) else [value]
        kept = [str(v) for v in values if isinstance(v, (str, int, float, bool))]
        if kept:
            attributes[str(name)] = kept
    return attributes
