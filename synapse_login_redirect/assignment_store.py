"""Sticky user → target assignments in Synapse's own database.

Through ``ModuleApi.run_db_interaction``, so it works on sqlite and
PostgreSQL, and every worker of a portal sees the same assignments.
"""

from __future__ import annotations

from synapse.module_api import LoggingTransaction, ModuleApi

_TABLE = "login_redirect_assignments"
_CREATE = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    user_key TEXT NOT NULL PRIMARY KEY,
    target TEXT NOT NULL,
    assigned_ts BIGINT NOT NULL
)
"""


class AssignmentStore:
    """Reads and records which target a user was placed on."""

    def __init__(self, api: ModuleApi) -> None:
        self._api = api
        self._table_ready = False

    async def get(self, user_key: str) -> str | None:
        await self._ensure_table()
        return await self._api.run_db_interaction(
            "login_redirect_get_assignment", _select, user_key
        )

    async def set(self, user_key: str, target: str) -> None:
        """Record ``target`` for the user, replacing any earlier assignment.

        Portal workers racing on one new user pick the same target (the pool
        hashes the user key), so the last write agrees with the first.
        """
        await self._ensure_table()
        now = self._api.get_current_time_msec()
        await self._api.run_db_interaction(
            "login_redirect_set_assignment", _upsert, user_key, target, now
        )

    async def _ensure_table(self) -> None:
        if not self._table_ready:
            await self._api.run_db_interaction("login_redirect_create_table", _create)
            self._table_ready = True


def _create(txn: LoggingTransaction) -> None:
    txn.execute(_CREATE)


def _select(txn: LoggingTransaction, user_key: str) -> str | None:
    txn.execute(f"SELECT target FROM {_TABLE} WHERE user_key = ?", (user_key,))
    row = txn.fetchone()
    return None if row is None else str(row[0])


def _upsert(txn: LoggingTransaction, user_key: str, target: str, now: int) -> None:
    txn.execute(
        f"INSERT INTO {_TABLE} (user_key, target, assigned_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (user_key) DO UPDATE"
        " SET target = excluded.target, assigned_ts = excluded.assigned_ts",
        (user_key, target, now),
    )
