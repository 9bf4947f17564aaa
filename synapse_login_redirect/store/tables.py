"""The module's own tables in Synapse's database (sqlite or PostgreSQL).

Reached through ``ModuleApi.run_db_interaction`` so every worker shares them.
Each process creates or migrates them (see ``schema``) once, in the
background from the moment the module loads (``module_tables``); every transaction of the
module's stores waits for that one step. On PostgreSQL the step holds an
advisory lock, so processes starting together take turns (``CREATE TABLE IF
NOT EXISTS`` run concurrently fails there).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar
from weakref import WeakKeyDictionary

from synapse.module_api import LoggingTransaction, ModuleApi, make_deferred_yieldable
from synapse.module_api.errors import SynapseError
from twisted.internet import defer

from synapse_login_redirect._synapse import is_postgres
from synapse_login_redirect.store.schema import (
    CREATE_SCHEMA_VERSION_TABLE,
    MIGRATIONS,
    SCHEMA_VERSION,
    SCHEMA_VERSION_TABLE,
)

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# pg_advisory_xact_lock's key for schema changes: "loginred" as a bigint.
SCHEMA_LOCK_KEY = int.from_bytes(b"loginred", "big")


class ModuleTables:
    """Runs the module's transactions once its tables are in place."""

    def __init__(self, api: ModuleApi) -> None:
        self._api = api
        self._ready = False
        self._schema: defer.Deferred[int | None] | None = None
        self._start_schema()

    def _start_schema(self) -> defer.Deferred[int | None]:
        # The Deferred fires in the sentinel logcontext, so it can be shared.
        self._schema = self._api.run_as_background_process(
            "login_redirect_schema", self._migrate
        )
        return self._schema

    async def _migrate(self) -> int:
        found = await self._api.run_db_interaction("login_redirect_schema", migrate)
        if found > SCHEMA_VERSION:
            logger.warning(
                "The database holds version %d of synapse-login-redirect's "
                "tables, newer than this release's %d",
                found,
                SCHEMA_VERSION,
            )
        return found

    async def _wait_for_schema(self) -> None:
        schema = self._schema or self._start_schema()
        done: defer.Deferred[int | None] = defer.Deferred()
        schema.addBoth(_relay, done)
        if await make_deferred_yieldable(done) is not None:
            self._ready = True
            return
        # Synapse logged the failure; the next transaction tries again.
        if self._schema is schema:
            self._schema = None
        raise SynapseError(503, "The login service's database is not ready")

    async def run(
        self,
        desc: str,
        func: Callable[Concatenate[LoggingTransaction, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        if not self._ready:
            await self._wait_for_schema()
        return await self._api.run_db_interaction(desc, func, *args, **kwargs)

    def now_ms(self) -> int:
        return self._api.get_current_time_msec()


_TABLES: WeakKeyDictionary[ModuleApi, ModuleTables] = WeakKeyDictionary()


def module_tables(api: ModuleApi) -> ModuleTables:
    """This process's ``ModuleTables``, shared by the portal and the SSO
    mapping providers (which Synapse builds apart), so one schema step."""
    tables = _TABLES.get(api)
    if tables is None:
        tables = _TABLES[api] = ModuleTables(api)
    return tables


def _relay(result: T, to: defer.Deferred[T]) -> T:
    to.callback(result)
    return result


def secret_hash(secret: str) -> str:
    """What the tables keep of a secret (a cookie nonce, a login token)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def read_committed(txn: LoggingTransaction) -> None:
    """Run this transaction at READ COMMITTED on PostgreSQL; call it first.

    Synapse's transactions are REPEATABLE READ there, where a statement that
    meets a row another transaction committed meanwhile fails with a
    serialization error, which Synapse retries with a warning. At READ
    COMMITTED, ``INSERT ... ON CONFLICT`` and a following ``SELECT`` see it.
    """
    if is_postgres(txn):
        txn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")


def purge_expired(txn: LoggingTransaction, table: str, now: int) -> None:
    """Start the transaction at READ COMMITTED (several workers purge at once:
    no retries) and delete ``table``'s rows whose ``expires_ts`` is past."""
    read_committed(txn)
    txn.execute(f"DELETE FROM {table} WHERE expires_ts < ?", (now,))


def migrate(txn: LoggingTransaction) -> int:
    """Bring the tables to ``SCHEMA_VERSION``; the version found."""
    read_committed(txn)
    if is_postgres(txn):
        txn.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))
    txn.execute(CREATE_SCHEMA_VERSION_TABLE)
    txn.execute(f"SELECT version FROM {SCHEMA_VERSION_TABLE}")
    row = txn.fetchone()
    found = 0 if row is None else int(row[0])
    for statements in MIGRATIONS[found:]:
        for statement in statements:
            txn.execute(statement)
    if row is None:
        txn.execute(
            f"INSERT INTO {SCHEMA_VERSION_TABLE} (version) VALUES (?)",
            (SCHEMA_VERSION,),
        )
    elif found < SCHEMA_VERSION:
        txn.execute(f"UPDATE {SCHEMA_VERSION_TABLE} SET version = ?", (SCHEMA_VERSION,))
    return found
