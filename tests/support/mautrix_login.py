"""A password login with mautrix, the client library of the mautrix bridges."""

from __future__ import annotations

import asyncio

from mautrix.client import Client
from mautrix.types import UserID
from yarl import URL

from tests.support.deployment import PASSWORD


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
