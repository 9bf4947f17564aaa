"""Creating and migrating the module's tables (on sqlite; PostgreSQL is live)."""

from __future__ import annotations

import sqlite3
from typing import Any, cast

from synapse.module_api import LoggingTransaction

from synapse_login_redirect.database import migrate
from synapse_login_redirect.schema import (
    ASSIGNMENTS,
    SCHEMA_VERSION,
    SCHEMA_VERSION_TABLE,
    SSO_TOKENS,
)


class _Txn:
    """The part of Synapse's LoggingTransaction that ``migrate`` uses."""

    database_engine = None  # not PostgreSQL

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._cursor = connection.cursor()

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        self._cursor.execute(sql, args)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()


def _migrate(connection: sqlite3.Connection) -> int:
    found = migrate(cast(LoggingTransaction, _Txn(connection)))
    connection.commit()
    return found


def _rows(connection: sqlite3.Connection, table: str) -> list[Any]:
    return connection.execute(f"SELECT * FROM {table}").fetchall()


def test_a_fresh_database_gets_every_table_and_the_version_once() -> None:
    connection = sqlite3.connect(":memory:")
    assert _migrate(connection) == 0
    assert _rows(connection, SCHEMA_VERSION_TABLE) == [(SCHEMA_VERSION,)]
    assert _rows(connection, ASSIGNMENTS) == []
    assert _rows(connection, SSO_TOKENS) == []
    assert _migrate(connection) == SCHEMA_VERSION
    assert _rows(connection, SCHEMA_VERSION_TABLE) == [(SCHEMA_VERSION,)]


def test_tables_from_before_the_version_table_are_kept() -> None:
    """Earlier releases created the same tables on first use."""
    connection = sqlite3.connect(":memory:")
    connection.execute(
        f"CREATE TABLE {ASSIGNMENTS} (user_key TEXT NOT NULL PRIMARY KEY,"
        " target TEXT NOT NULL, assigned_ts BIGINT NOT NULL)"
    )
    connection.execute(f"INSERT INTO {ASSIGNMENTS} VALUES ('alice', 'eng', 1)")
    assert _migrate(connection) == 0
    assert _rows(connection, ASSIGNMENTS) == [("alice", "eng", 1)]
    assert _rows(connection, SCHEMA_VERSION_TABLE) == [(SCHEMA_VERSION,)]
