"""Real client libraries against the target role."""

from __future__ import annotations

import asyncio

import pytest
from nio import AsyncClient, LoginResponse, WhoamiResponse

from tests.support.deployment import PASSWORD, Deployment
from tests.support.mautrix_login import mautrix_login

pytestmark = pytest.mark.live


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
