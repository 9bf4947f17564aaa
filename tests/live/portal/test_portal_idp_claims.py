"""The claims of the portal's own IdPs route only the sign-in they came from
(issue 11, item 7).

portal-proxy has two OpenID Connect providers of its own whose users share a
subject: ``ivy`` at ``PORTAL_IDP_ID`` (claim department History: hist) and
another person, ``ivy`` at ``OTHER_IDP_ID`` (email at eng.example: eng),
who is ``@other_ivy`` on the portal.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.support.portal_deployment import (
    IDP_ID,
    OTHER_IDP_ID,
    PORTAL_IDP_ID,
    PortalDeployment,
)
from tests.support.portal_sso import BOUNCE, CLIENT, any_login_hint
from tests.support.sso_client import SsoClient

pytestmark = pytest.mark.live

SSO_REDIRECT = "/_matrix/client/v3/login/sso/redirect"


def _start(portals: PortalDeployment, idp_id: str) -> str:
    return portals.portal_proxy.url(
        f"{SSO_REDIRECT}/{idp_id}?{urlencode({'redirectUrl': CLIENT})}"
    )


def _to_bounce(
    portals: PortalDeployment, client: SsoClient, idp_id: str, user: str
) -> str:
    """Sign in at one of the portal's own IdPs: the bounce URL, not yet visited."""
    return client.follow(
        _start(portals, idp_id),
        until=portals.portal_proxy.url(BOUNCE),
        rewrite=any_login_hint(user),
    )


def _target_sso(portals: PortalDeployment, name: str) -> str:
    return portals.targets[name].url(f"{SSO_REDIRECT}/{IDP_ID}?")


def test_same_subject_at_another_idp_is_routed_by_its_own_claims(
    portals: PortalDeployment,
) -> None:
    """The other IdP's ivy signs in; then, before her bounce, the first IdP's
    ivy does: each is routed by the claims of her own IdP."""
    other_client, first_client = SsoClient(), SsoClient()
    other_bounce = _to_bounce(portals, other_client, OTHER_IDP_ID, "ivy")
    first_bounce = _to_bounce(portals, first_client, PORTAL_IDP_ID, "ivy")
    other = other_client.request("GET", other_bounce)
    assert other.status == 302, other
    assert other.headers["location"].startswith(_target_sso(portals, "eng"))
    first = first_client.request("GET", first_bounce)
    assert first.status == 302, first
    assert first.headers["location"].startswith(_target_sso(portals, "hist"))


def test_claims_of_an_earlier_sign_in_do_not_route_a_later_session(
    portals: PortalDeployment,
) -> None:
    """A sign-in's login token brought to the bounce of a session started after
    its claims were kept: those claims belong to the earlier sign-in."""
    client = SsoClient()
    earlier = _to_bounce(portals, client, PORTAL_IDP_ID, "ivy")
    token = parse_qs(urlsplit(earlier).query)["loginToken"][0]
    later = client.request("GET", _start(portals, PORTAL_IDP_ID))
    assert later.status == 302, later
    own_sso = parse_qs(urlsplit(later.headers["location"]).query)["redirectUrl"][0]
    session = parse_qs(urlsplit(own_sso).query)["session"][0]
    bounce = portals.portal_proxy.url(
        f"{BOUNCE}?{urlencode({'session': session, 'loginToken': token})}"
    )
    answer = client.request("GET", bounce)
    assert answer.status == 403, answer
    assert b"Sign-in failed" in answer.body
    assert "location" not in answer.headers
