"""Steps of a single sign-on through the portal deployment's ``portal-proxy``
that several tests take."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from tests.support.portal_deployment import IDP_ID, PortalDeployment
from tests.support.sso_client import SsoClient

CLIENT = "http://client.test/cb?x=1"
REALM = "/_synapse/client/login_redirect/realm"
COMPLETE = "/_synapse/client/login_redirect/complete"
BOUNCE = "/_synapse/client/login_redirect/bounce"


def sso_start(portals: PortalDeployment, redirect_url: str, version: str = "v3") -> str:
    path = f"/_matrix/client/{version}/login/sso/redirect/{IDP_ID}"
    return portals.portal_proxy.url(
        f"{path}?{urlencode({'redirectUrl': redirect_url})}"
    )


def login_hint(portals: PortalDeployment, user: str) -> Callable[[str], str]:
    def rewrite(url: str) -> str:
        if url.startswith(portals.idp.issuer + "/authorize"):
            return f"{url}&login_hint={user}"
        return url

    return rewrite


def to_completion(
    portals: PortalDeployment,
    client: SsoClient,
    choice: dict[str, str],
    user: str,
    redirect_url: str = CLIENT,
) -> str:
    """Start at the portal, answer the realm page, sign in: the completion URL."""
    realm = client.request("GET", sso_start(portals, redirect_url))
    assert realm.status == 302, realm
    realm_url = portals.portal_proxy.url(realm.headers["location"])
    page = client.request("GET", realm_url)
    assert page.status == 200, page
    form = {"redirectUrl": redirect_url, "idp": IDP_ID, **choice}
    bounce = client.request("POST", portals.portal_proxy.url(REALM), form=form)
    assert bounce.status == 302, bounce
    return client.follow(
        bounce.headers["location"],
        until=portals.portal_proxy.url(COMPLETE),
        rewrite=login_hint(portals, user),
    )


def any_login_hint(user: str) -> Callable[[str], str]:
    """Sign in as ``user`` at whichever test IdP asks."""

    def rewrite(url: str) -> str:
        if "/authorize?" in url or "/sso?" in url:
            return f"{url}&login_hint={user}"
        return url

    return rewrite
