"""What tests know of the portal deployment (fixture ``portals`` in
tests/live/portal/conftest.py): its servers, users, IdPs and settings, and the
module config its portals are built from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attr

from deploy.homeserver import Homeserver, free_port
from tests.support.fake_target import FakeTarget
from tests.support.idp.oidc import OidcProvider
from tests.support.idp.saml import SamlIdp

POOL_USERS = ("paula", "quinn", "rita", "stan", "tess", "ursula")
EMAILS = {"erin": "erin@eng.example", "hugo": "hugo@hist.example"}
LOCKED_AFTER = 3
PROXY_TIMEOUT = 2
IDP_ID = "oidc-testidp"
PORTAL_IDP_ID = "oidc-portalidp"  # the same provider, as the portal's own IdP
SAML_IDP_ID = "saml"
OTHER_IDP_ID = "oidc-otheridp"  # a second IdP of the portal's own
UNPLACED_MESSAGE = "The portal cannot place you: ask the help desk."

PORTAL_FEDERATION_PORT = free_port()


@attr.s(frozen=True, auto_attribs=True)
class PortalDeployment:
    eng: Homeserver
    hist: Homeserver
    portal: Homeserver
    portal_proxy: Homeserver
    slow: FakeTarget
    postgres_db: str
    idp: OidcProvider
    saml_idp: SamlIdp
    other_idp: OidcProvider

    @property
    def targets(self) -> dict[str, Homeserver]:
        return {"eng": self.eng, "hist": self.hist}

    @property
    def all(self) -> list[Homeserver]:
        return [self.eng, self.hist, self.portal, self.portal_proxy]


def portal_module_config(
    targets: dict[str, Homeserver],
    mode: str,
    directory: Path,
    *,
    pool: dict[str, int],
    extra_targets: dict[str, Any] | None = None,
    extra_rules: list[dict[str, Any]] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    names = {"eng": "Engineering", "hist": "History"}
    return {
        "targets": {
            **{
                name: {
                    "base_url": hs.base_url,
                    "mode": mode,
                    "public_name": names[name],
                }
                for name, hs in targets.items()
            },
            **(extra_targets or {}),
        },
        "portal": {
            "rules": [
                {"server_name": "eng.test", "target": "eng"},
                {"server_name": "hist.test", "target": "hist"},
                {"server_name": ["portal.test", "portal-proxy.test"], "target": "self"},
                {"localpart": "hist_.*", "target": "hist"},
                {"email_domain": "eng.example", "target": "eng"},
                {"email_domain": "hist.example", "target": "hist"},
                {"directory": str(directory)},
                *(extra_rules or []),
            ],
            "pool": pool,
            "unplaced_message": UNPLACED_MESSAGE,
            **settings,
        },
    }
