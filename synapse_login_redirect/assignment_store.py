"""Sticky user → target assignments of the portal's pool, in Synapse's database."""

from __future__ import annotations

from synapse.module_api import LoggingTransaction, ModuleApi

from synapse_login_redirect.database import module_tables
from synapse_login_redirect.schema import ASSIGNMENTS


class AssignmentStore:
    """Reads and records which target a user was placed on."""

    def __init__(self, api: ModuleApi) -> None:
        self._tables = module_tables(api)

    async def get(self, user_key: str) -> str | None:
        return await self._tables.run(
            "login_redirect_get_assignment", _select, user_key
        )

    async def set(self, user_key: str, target: str) -> None:
        """Record ``target`` for the user, replacing any earlier assignment.

        Portal workers racing on one new user pick the same target (the pool
        hashes the user key), so the last write agrees with the first.
        """
        await self._tables.run(
            "login_redirect_set_assignment",
            _upsert,
            user_key,
            target,
            self._tables.now_ms(),
        )


def _select(txn: LoggingTransaction, user_key: str) -> str | None:
    txn.execute(f"SELECT target FROM {ASSIGNMENTS} WHERE user_key = ?", (user_key,))
    row = txn.fetchone()
    return None if row is None else str(row[0])


def _upsert(txn: LoggingTransaction, user_key: str, target: str, now: int) -> None:
    txn.execute(
        f"INSERT INTO {ASSIGNMENTS} (user_key, target, assigned_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (user_key) DO UPDATE"
        " SET target = excluded.target, assigned_ts = excluded.assigned_ts",
        (user_key, target, now),
    )
