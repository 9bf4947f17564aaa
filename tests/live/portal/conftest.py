"""A portal deployment: two target homeservers and two portals in front of them.

- ``eng`` (server name ``eng.test``) and ``hist`` (``hist.test``): targets with
  the module; ``hist`` locks an account after 3 failed logins.
- ``portal`` (sqlite): every target in redirect mode, pool ``eng: 1, hist: 1``.
- ``portal-proxy`` (PostgreSQL): every target in proxy mode, ``base_cs_url``
  on, plus ``slow`` (a socket that never answers; 2 s timeout) and ``down``
  (a closed port, weight 100 in the pool, failing its 1 s health checks).

Both portals route by server name, localpart pattern, email domain and a
directory file; ``@...:<portal>.test`` users stay on the portal (``self``).

Single sign-on: both targets sign users in with one OpenID Connect provider
(``tests/support/idp/oidc.py``, idp ``oidc-testidp``). ``portal-proxy`` routes SSO
(home-realm page with departments and a user field), allows redirectUrls
under ``ALLOWED_CLIENTS`` only, and skips Synapse's confirmation page for
``WHITELISTED_CLIENTS``. Its own IdPs are the same provider, SAML, and a
second OpenID Connect provider (``OTHER_IDP_ID``) whose ``ivy`` has the same
subject as the first one's but is another user (``@other_ivy``) with other
claims.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.homeserver import (
    Homeserver,
    assert_no_errors_logged,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    http,
    start_all,
    stop_all,
)
from tests.support.deployment import PASSWORD
from tests.support.fake_target import FakeTarget
from tests.support.idp.oidc import OidcProvider
from tests.support.idp.saml import SamlIdp
from tests.support.oidc_config import oidc_provider_config
from tests.support.portal_deployment import (
    EMAILS,
    IDP_ID,
    LOCKED_AFTER,
    OTHER_IDP_ID,
    POOL_USERS,
    PORTAL_FEDERATION_PORT,
    PORTAL_IDP_ID,
    PROXY_TIMEOUT,
    SAML_IDP_ID,
    PortalDeployment,
    portal_module_config,
)

ENG_USERS = ("erin", "carol", *POOL_USERS)
HIST_USERS = ("hugo", "hist_hana", "hist_locked", "ivy", *POOL_USERS)
DEPARTMENTS = {"Engineering": "eng", "History": "hist", "Lab": "down"}
# "element://" names no origin: the portal warns that it never matches.
WHITELISTED_CLIENTS = ["http://client.test/", "http://127.0.0.1:", "element://"]
ALLOWED_CLIENTS = ["http://client.test/", "http://127.0.0.1:", "http://localhost:"]


def _saml_config(saml_idp: SamlIdp, mapping: dict[str, Any]) -> dict[str, Any]:
    return {
        "sp_config": {
            "metadata": {"local": [str(saml_idp.metadata_path)]},
            "allow_unknown_attributes": True,
            "xmlsec_binary": "/usr/bin/xmlsec1",
        },
        "user_mapping_provider": mapping,
    }


def _sso_config(
    idp: OidcProvider, saml_idp: SamlIdp, portal_proxy_port: int
) -> dict[str, Any]:
    """A target's SSO: both test IdPs, and the portal's completion URL allowed."""
    completion = (
        f"http://127.0.0.1:{portal_proxy_port}/_synapse/client/login_redirect/complete"
    )
    return {
        "oidc_providers": [oidc_provider_config(idp, "testidp")],
        "saml2_config": _saml_config(
            saml_idp, {"config": {"mxid_source_attribute": "uid"}}
        ),
        "sso": {"client_whitelist": [completion]},
    }


def _bind_emails(hs: Homeserver, users: dict[str, str]) -> None:
    """Give users an email address with Synapse's admin API."""
    hs.register_user("admin", PASSWORD, admin=True)
    token = hs.password_login("admin", PASSWORD).json()["access_token"]
    for localpart, email in users.items():
        response = http(
            "PUT",
            hs.url(f"/_synapse/admin/v2/users/@{localpart}:{hs.server_name}"),
            {"threepids": [{"medium": "email", "address": email}]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status == 200, response


@pytest.fixture(scope="session")
def portals(workdir: Path) -> Iterator[PortalDeployment]:
    idp = OidcProvider(
        {
            "erin": {"email": EMAILS["erin"], "name": "Erin"},
            "hugo": {"email": EMAILS["hugo"], "name": "Hugo"},
            "ivy": {"email": "ivy@elsewhere.example", "department": "History"},
            "zed": {"department": "Nowhere"},
        }
    ).start()
    saml_idp = SamlIdp(
        {
            "erin": {"email": [EMAILS["erin"]]},
            "hugo": {"email": [EMAILS["hugo"]]},
            "ivy": {"department": ["History"]},
            "zed": {"department": ["Nowhere"]},
        }
    ).start()
    other_idp = OidcProvider({"ivy": {"email": "ivy@eng.example"}}).start()
    portal_proxy_port = free_port()
    sso = _sso_config(idp, saml_idp, portal_proxy_port)
    eng = Homeserver("eng", workdir, module_config={}, extra_config=sso)
    hist = Homeserver(
        "hist",
        workdir,
        module_config={},
        extra_config={
            **sso,
            "rc_login": {
                "address": {"per_second": 10000, "burst_count": 10000},
                "account": {"per_second": 10000, "burst_count": 10000},
                "failed_attempts": {"per_second": 0.001, "burst_count": LOCKED_AFTER},
            },
        },
    )
    directory = workdir / "directory.tsv"
    directory.write_text("# user  target\ncarol\teng\n")
    targets = {"eng": eng, "hist": hist}
    portal = Homeserver(
        "portal",
        workdir,
        module_config=portal_module_config(
            targets,
            "redirect",
            directory,
            pool={"eng": 1, "hist": 1},
            # SSO through the portal, which has no IdP of its own.
            sso={"departments": {"Engineering": "eng", "History": "hist"}},
        ),
    )
    # A federation-only listener, where the module's pages must not be.
    portal.config["listeners"].append(
        {
            "port": PORTAL_FEDERATION_PORT,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "resources": [{"names": ["federation"]}],
        }
    )
    portal.write_config()
    slow = FakeTarget()
    postgres_db = f"login_redirect_portal_{free_port()}"
    create_postgres_database(postgres_db)
    portal_proxy = Homeserver(
        "portal-proxy",
        workdir,
        port=portal_proxy_port,
        postgres_db=postgres_db,
        extra_config={
            "sso": {"client_whitelist": WHITELISTED_CLIENTS},
            "oidc_providers": [
                oidc_provider_config(
                    idp, "portalidp", "synapse_login_redirect.OidcMappingProvider"
                ),
                oidc_provider_config(
                    other_idp,
                    OTHER_IDP_ID.removeprefix("oidc-"),
                    "synapse_login_redirect.OidcMappingProvider",
                    name="Other IdP",
                    localpart_prefix="other_",
                ),
            ],
            "saml2_config": _saml_config(
                saml_idp,
                {
                    "module": "synapse_login_redirect.SamlMappingProvider",
                    "config": {
                        "mxid_source_attribute": "uid",
                        "routing_attributes": ["department"],
                    },
                },
            ),
        },
        module_config={
            "base_cs_url": True,
            "redirect_url": {
                "require_https": True,
                "allowed_prefixes": ALLOWED_CLIENTS,
            },
            **portal_module_config(
                targets,
                "proxy",
                directory,
                pool={"eng": 1, "hist": 1, "down": 100},
                extra_targets={
                    "slow": {
                        "base_url": f"http://127.0.0.1:{slow.port}",
                        "mode": "proxy",
                        "public_name": "Slow Lab",
                    },
                    "down": {"base_url": f"http://127.0.0.1:{free_port()}"},
                },
                extra_rules=[
                    {"localpart": "slow_.*", "target": "slow"},
                    {
                        "attribute": {"name": "department", "equals": "History"},
                        "target": "hist",
                    },
                    {
                        "attribute": {"name": "department", "equals": "Nowhere"},
                        "target": "self",
                    },
                ],
                proxy_timeout=PROXY_TIMEOUT,
                health_check_interval=1,
                sso={
                    "departments": DEPARTMENTS,
                    "portal_idps": {
                        PORTAL_IDP_ID: IDP_ID,
                        SAML_IDP_ID: SAML_IDP_ID,
                        # The targets do not know this IdP: tests stop at the
                        # portal's routing decision.
                        OTHER_IDP_ID: IDP_ID,
                    },
                },
            ),
        },
    )
    saml_idp.sp_metadata_urls = [
        hs.url("/_synapse/client/saml2/metadata.xml")
        for hs in (eng, hist, portal_proxy)
    ]
    deployment = PortalDeployment(
        eng, hist, portal, portal_proxy, slow, postgres_db, idp, saml_idp, other_idp
    )
    start_all(deployment.all)
    try:
        for localpart in ENG_USERS:
            eng.register_user(localpart, PASSWORD)
        for localpart in HIST_USERS:
            hist.register_user(localpart, PASSWORD)
        for hs in (portal, portal_proxy):
            hs.register_user("pat", PASSWORD)
        _bind_emails(eng, {"erin": EMAILS["erin"]})
        _bind_emails(hist, {"hugo": EMAILS["hugo"]})
        yield deployment
        assert_no_errors_logged(deployment.all)
    finally:
        stop_all(deployment.all)
        slow.close()
        idp.stop()
        other_idp.stop()
        saml_idp.stop()
        time.sleep(0.5)  # let PostgreSQL see the connections go
        drop_postgres_database(postgres_db)
