"""A homeserver's ``oidc_providers`` entry for the test OpenID Connect provider."""

from __future__ import annotations

from typing import Any

from tests.support.idp.oidc import OidcProvider


def oidc_provider_config(
    idp: OidcProvider,
    idp_id: str,
    mapping_module: str | None = None,
    *,
    name: str = "Test IdP",
    localpart_prefix: str = "",
) -> dict[str, Any]:
    template = localpart_prefix + "{{ user.preferred_username }}"
    mapping: dict[str, Any] = {"config": {"localpart_template": template}}
    if mapping_module is not None:
        mapping["module"] = mapping_module
    return {
        "idp_id": idp_id,
        "idp_name": name,
        "issuer": idp.issuer,
        "client_id": idp.client_id,
        "client_secret": idp.client_secret,
        "scopes": ["openid", "profile", "email"],
        "skip_verification": True,
        "allow_existing_users": True,
        "user_mapping_provider": mapping,
    }
