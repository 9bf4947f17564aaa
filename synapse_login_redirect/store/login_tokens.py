"""Which target minted each login token the portal passed on from an SSO
sign-in, by the token's hash (never the token), for ``m.login.token`` at the
portal; in Synapse's database so any worker can route it."""

from __future__ import annotations

from synapse.module_api import LoggingTransaction

from synapse_login_redirect.store.schema import SSO_TOKENS
from synapse_login_redirect.store.tables import (
    ModuleTables,
    purge_expired,
    secret_hash,
)


class LoginTokenTable:
    """The targets of the login tokens that SSO through the portal brought."""

    def __init__(self, tables: ModuleTables) -> None:
        self._tables = tables

    async def remember_token(self, token: str, target: str, lifetime_ms: int) -> None:
        now = self._tables.now_ms()
        await self._tables.run(
            "login_redirect_remember_token",
            _insert_token,
            secret_hash(token),
            target,
            now,
            now + lifetime_ms,
        )

    async def target_of_token(self, token: str) -> str | None:
        """The target that minted ``token``, while the record lasts.

        Kept until it expires, so a login that failed on the way (a target
        briefly down) can be retried; the target itself accepts a token once.
        """
        return await self._tables.run(
            "login_redirect_token_target",
            _token_target,
            secret_hash(token),
            self._tables.now_ms(),
        )


def _insert_token(
    txn: LoggingTransaction, token_hash: str, target: str, now: int, expires: int
) -> None:
    purge_expired(txn, SSO_TOKENS, now)
    txn.execute(
        f"INSERT INTO {SSO_TOKENS} (token_hash, target, expires_ts) VALUES (?, ?, ?)"
        " ON CONFLICT (token_hash) DO NOTHING",
        (token_hash, target, expires),
    )


def _token_target(txn: LoggingTransaction, token_hash: str, now: int) -> str | None:
    txn.execute(
        f"SELECT target FROM {SSO_TOKENS} WHERE token_hash = ? AND expires_ts >= ?",
        (token_hash, now),
    )
    row = txn.fetchone()
    return None if row is None else str(row[0])
