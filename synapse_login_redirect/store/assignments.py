"""Sticky user → target assignments of the portal's pool, in Synapse's database."""

from __future__ import annotations

from synapse.module_api import LoggingTransaction

from synapse_login_redirect.store.schema import ASSIGNMENTS
from synapse_login_redirect.store.tables import ModuleTables, read_committed


class AssignmentTable:
    """Which target each pool user was placed on, by user key."""

    def __init__(self, tables: ModuleTables) -> None:
        self._tables = tables

    async def get(self, user_key: str) -> str | None:
        return await self._tables.run(
            "login_redirect_get_assignment", _select, user_key
        )

    async def claim(self, user_key: str, target: str, replacing: str | None) -> str:
        """Record ``target`` unless the user has an assignment other than
        ``replacing``; the one stored now. Portal workers placing one new user
        at once get the same answer: the first write wins."""
        return await self._tables.run(
            "login_redirect_claim_assignment",
            _claim,
            user_key,
            target,
            replacing,
            self._tables.now_ms(),
        )


def _select(txn: LoggingTransaction, user_key: str) -> str | None:
    txn.execute(f"SELECT target FROM {ASSIGNMENTS} WHERE user_key = ?", (user_key,))
    row = txn.fetchone()
    return None if row is None else str(row[0])


def _claim(
    txn: LoggingTransaction,
    user_key: str,
    target: str,
    replacing: str | None,
    now: int,
) -> str:
    # READ COMMITTED: a concurrent first write makes the INSERT do nothing
    # (no serialization failure), and the SELECT then sees that write.
    read_committed(txn)
    if replacing is not None:
        txn.execute(
            f"UPDATE {ASSIGNMENTS} SET target = ?, assigned_ts = ?"
            " WHERE user_key = ? AND target = ?",
            (target, now, user_key, replacing),
        )
    txn.execute(
        f"INSERT INTO {ASSIGNMENTS} (user_key, target, assigned_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (user_key) DO NOTHING",
        (user_key, target, now),
    )
    stored = _select(txn, user_key)
    assert stored is not None  # inserted above if absent
    return stored
