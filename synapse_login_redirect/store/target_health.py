"""The last health result of each pool target, in Synapse's database, so every
portal process sees the checks of the one that runs them (see
``portal.health``)."""

from __future__ import annotations

from synapse.module_api import LoggingTransaction

from synapse_login_redirect.store.schema import TARGET_HEALTH
from synapse_login_redirect.store.tables import ModuleTables, read_committed


class TargetHealthTable:
    """Whether each pool target was healthy, and when that was recorded."""

    def __init__(self, tables: ModuleTables) -> None:
        self._tables = tables

    async def failing(self, recorded_since: int) -> list[str]:
        """The targets recorded as failing since ``recorded_since`` (ms)."""
        return await self._tables.run(
            "login_redirect_read_health", _failing_targets, recorded_since
        )

    async def record(self, target: str, healthy: bool, now: int) -> bool | None:
        """Store a result at ``now`` (ms); the one it replaces, if any."""
        return await self._tables.run(
            "login_redirect_record_health", _record, target, healthy, now
        )


def _failing_targets(txn: LoggingTransaction, recorded_since: int) -> list[str]:
    txn.execute(
        f"SELECT target FROM {TARGET_HEALTH} WHERE NOT healthy AND checked_ts >= ?",
        (recorded_since,),
    )
    return [str(row[0]) for row in txn.fetchall()]


def _record(
    txn: LoggingTransaction, target: str, healthy: bool, now: int
) -> bool | None:
    read_committed(txn)  # processes marking one target at once: no retries
    txn.execute(f"SELECT healthy FROM {TARGET_HEALTH} WHERE target = ?", (target,))
    row = txn.fetchone()
    txn.execute(
        f"INSERT INTO {TARGET_HEALTH} (target, healthy, checked_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (target) DO UPDATE"
        " SET healthy = excluded.healthy, checked_ts = excluded.checked_ts",
        (target, healthy, now),
    )
    return None if row is None else bool(row[0])
