"""The attributes or claims the portal's own IdPs gave, by IdP and remote user
id, until the bounce of that sign-in takes them (once) or they expire; in
Synapse's database, since the mapping provider that keeps them may run on
another worker than the bounce."""

from __future__ import annotations

import json
from collections.abc import Mapping

from synapse.module_api import LoggingTransaction

from synapse_login_redirect.store.schema import SSO_CLAIMS
from synapse_login_redirect.store.tables import (
    ModuleTables,
    purge_expired,
)

# Claims serve the bounce that follows their sign-in, which brings a login
# token that lives 2 minutes (Synapse's SSO tokens); a margin beyond that.
CLAIMS_LIFETIME_MS = 3 * 60 * 1000


class IdpClaimTable:
    """What the portal's own IdPs said of users at the sign-ins in progress."""

    def __init__(self, tables: ModuleTables) -> None:
        self._tables = tables

    async def remember_claims(
        self, idp_id: str, remote_user_id: str, attributes: Mapping[str, list[str]]
    ) -> None:
        """What an IdP said of a user at the sign-in in progress."""
        now = self._tables.now_ms()
        await self._tables.run(
            "login_redirect_remember_claims",
            _upsert_claims,
            idp_id,
            remote_user_id,
            json.dumps(attributes),
            now,
            now + CLAIMS_LIFETIME_MS,
        )

    async def take_claims(
        self, idp_id: str, remote_user_id: str, not_before: int
    ) -> dict[str, list[str]] | None:
        """The claims an IdP gave for a user since ``not_before`` (ms), once."""
        raw = await self._tables.run(
            "login_redirect_take_claims",
            _take_claims,
            idp_id,
            remote_user_id,
            not_before,
            self._tables.now_ms(),
        )
        return None if raw is None else dict(json.loads(raw))


def _upsert_claims(
    txn: LoggingTransaction,
    idp_id: str,
    remote_id: str,
    attributes: str,
    now: int,
    expires: int,
) -> None:
    purge_expired(txn, SSO_CLAIMS, now)
    txn.execute(
        f"INSERT INTO {SSO_CLAIMS}"
        " (idp_id, remote_user_id, attributes, stored_ts, expires_ts)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (idp_id, remote_user_id) DO UPDATE"
        " SET attributes = excluded.attributes, stored_ts = excluded.stored_ts,"
        " expires_ts = excluded.expires_ts",
        (idp_id, remote_id, attributes, now, expires),
    )


def _take_claims(
    txn: LoggingTransaction, idp_id: str, remote_id: str, not_before: int, now: int
) -> str | None:
    """Select and delete in one go: one bounce at most uses a claim set."""
    key = (idp_id, remote_id, not_before, now)
    where = (
        " WHERE idp_id = ? AND remote_user_id = ?"
        " AND stored_ts >= ? AND expires_ts >= ?"
    )
    txn.execute(f"SELECT attributes FROM {SSO_CLAIMS}{where}", key)
    row = txn.fetchone()
    if row is None:
        return None
    txn.execute(f"DELETE FROM {SSO_CLAIMS}{where}", key)
    if txn.rowcount != 1:  # another worker took them first
        return None
    return str(row[0])
