"""A SAML user mapping provider for a portal that routes on the IdP's attributes.

Synapse's default SAML mapping, which also keeps the attributes a login brings,
by IdP and remote user id, for the portal to route once the sign-in comes back
(``SsoPortal.bounce``, which takes them once). Set it as ``saml2_config.user_mapping_provider.module``
on the portal. Its config is Synapse's, plus ``routing_attributes``: the
attributes the rules use, which the portal then asks the IdP for (many IdPs
release only the attributes a service provider's metadata requests).
"""

from __future__ import annotations

from typing import Any

import attr
from synapse.module_api import ModuleApi

from synapse_login_redirect._synapse import (
    DefaultSamlMappingProvider,
    SamlConfig,
    check_synapse_support,
    saml_idp_id,
)
from synapse_login_redirect.store.idp_claims import IdpClaimTable
from synapse_login_redirect.store.tables import module_tables


@attr.s(auto_attribs=True)
class RoutingSamlConfig(SamlConfig):
    """Synapse's SAML mapping config plus the attributes the portal routes on."""

    routing_attributes: tuple[str, ...] = ()


class SamlMappingProvider(DefaultSamlMappingProvider):
    """Synapse's default SAML mapping, which also keeps the attributes for routing."""

    def __init__(self, parsed_config: RoutingSamlConfig, module_api: ModuleApi) -> None:
        check_synapse_support(module_api)
        super().__init__(parsed_config, module_api)
        self._api = module_api
        self._claims = IdpClaimTable(module_tables(module_api))
        # Synapse's SAML handler is still being built: asked on first use.
        self._idp_id: str | None = None

    @staticmethod
    def parse_config(config: dict[str, Any]) -> RoutingSamlConfig:
        routing = config.get("routing_attributes", [])
        if not isinstance(routing, list) or not all(
            isinstance(a, str) for a in routing
        ):
            raise ValueError(
                "routing_attributes must be a list of SAML attribute names, "
                "e.g. [department]"
            )
        rest = {k: v for k, v in config.items() if k != "routing_attributes"}
        base = DefaultSamlMappingProvider.parse_config(rest)
        return RoutingSamlConfig(
            base.mxid_source_attribute, base.mxid_mapper, tuple(routing)
        )

    @staticmethod
    def get_saml_attributes(config: SamlConfig) -> tuple[set[str], set[str]]:
        required, optional = DefaultSamlMappingProvider.get_saml_attributes(config)
        if isinstance(config, RoutingSamlConfig):
            optional |= set(config.routing_attributes)
        return required, optional

    def get_remote_user_id(self, saml_response: Any, client_redirect_url: str) -> str:
        """Called on every login, new user or not: keep the attributes too.

        Synapse calls this synchronously, so they are written in the
        background; the bounce page waits briefly for them.
        """
        remote_id = str(super().get_remote_user_id(saml_response, client_redirect_url))
        attributes = {
            str(name): [str(v) for v in values]
            for name, values in dict(saml_response.ava).items()
        }
        if self._idp_id is None:
            self._idp_id = saml_idp_id(self._api)
        self._api.run_as_background_process(
            "login_redirect_keep_saml_attributes",
            self._claims.remember_claims,
            self._idp_id,
            remote_id,
            attributes,
        )
        return remote_id
