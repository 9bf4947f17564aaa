"""Real client libraries against the target role."""

from __future__ import annotations

import asyncio

import pytest
from mautrix.client import Client
from mautrix.types import UserID
from nio import AsyncClient, LoginResponse, WhoamiResponse
from yarl import URL

from tests.live.conftest import PASSWORD, Deployment

pytestmark = pytest.mark.live


def mautrix_login(user_id: str, base_url: str) -> tuple[str, str]:
    """mautrix's password login with update_hs_url: the URL it ends on, and whoami."""

    async def scenario() -> tuple[str, str]:
        client = Client(mxid=UserID(user_id), base_url=base_url)
        try:
            await client.login(password=PASSWORD, update_hs_url=True)
            # mautrix 0.21 stores the new base URL as a str, while the rest of
            # HTTPAPI expects a yarl.URL (it joins paths with "/"), so the next
            # request would fail. Restore the type it declares.
            client.api.base_url = URL(str(client.api.base_url))
            whoami = await client.whoami()
            return str(client.api.base_url), whoami.user_id
        finally:
            await client.api.session.close()

    return asyncio.run(scenario())


def test_mautrix_follows_well_known_and_works_there(deployment: Deployment) -> None:
    hs = deployment.target
    base_url, user_id = mautrix_login(f"@alice:{hs.server_name}", hs.base_url)
    assert base_url == deployment.advertised_target_url
    assert user_id == f"@alice:{hs.server_name}"


def test_matrix_nio_logs_in_unaffected(deployment: Deployment) -> None:
    async def scenario() -> tuple[object, object, str]:
        hs = deployment.target
        client = AsyncClient(hs.base_url, f"@alice:{hs.server_name}")
        try:
            login = await client.login(PASSWORD)
            whoami = await client.whoami()
            return login, whoami, client.homeserver
        finally:
            await client.close()

    login, whoami, homeserver = asyncio.run(scenario())
    assert isinstance(login, LoginResponse), login
    assert isinstance(whoami, WhoamiResponse), whoami
    assert whoami.user_id == f"@alice:{deployment.target.server_name}"
    assert homeserver == deployment.target.base_url
