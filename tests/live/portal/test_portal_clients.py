"""Real client libraries log in at the portal and end on the user's homeserver."""

from __future__ import annotations

import asyncio

import pytest
from nio import AsyncClient, LoginResponse

from tests.support.deployment import PASSWORD
from tests.support.mautrix_login import mautrix_login
from tests.support.portal_deployment import PortalDeployment

pytestmark = pytest.mark.live


def test_mautrix_follows_the_307_and_the_well_known(portals: PortalDeployment) -> None:
    base_url, user_id = mautrix_login("@erin:eng.test", portals.portal.base_url)
    assert base_url == portals.eng.base_url
    assert user_id == "@erin:eng.test"


def test_matrix_nio_logs_in_through_the_proxy(portals: PortalDeployment) -> None:
    async def scenario() -> tuple[object, str]:
        client = AsyncClient(portals.portal_proxy.base_url, "hist_hana")
        try:
            login = await client.login(PASSWORD)
            assert isinstance(login, LoginResponse), login
            # nio ignores well_known; a client that follows it goes here:
            well_known = login.transport_response
            assert well_known is not None
            body = await well_known.json()
            client.homeserver = body["well_known"]["m.homeserver"]["base_url"]
            return await client.whoami(), client.homeserver
        finally:
            await client.close()

    whoami, homeserver = asyncio.run(scenario())
    assert homeserver == portals.hist.base_url
    assert getattr(whoami, "user_id", None) == "@hist_hana:hist.test"
