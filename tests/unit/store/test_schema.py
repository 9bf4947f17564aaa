"""Creating and migrating the module's tables (on sqlite; PostgreSQL is live)."""

from __future__ import annotations

import sqlite3
from typing import Any, cast

from synapse.module_api import LoggingTransaction

from synapse_login_redirect.store.schema import (
    ASSIGNMENTS,
    MIGRATIONS,
    SCHEMA_VERSION,
    SCHEMA_VERSION_TABLE,
    SSO_CLAIMS,
    SSO_SESSIONS,
    SSO_TOKENS,
)
from synapse_login_redirect.store.tables import migrate
from tests.support.sqlite_txn import SqliteTxn


def _migrate(connection: sqlite3.Connection) -> int:
    found = migrate(cast(LoggingTransaction, SqliteTxn(connection)))
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


def test_version_1_tables_are_migrated_with_their_rows() -> None:
    """A database of the first versioned release gets the later changes."""
    connection = sqlite3.connect(":memory:")
    for statement in MIGRATIONS[0]:
        connection.execute(statement)
    connection.execute(f"CREATE TABLE {SCHEMA_VERSION_TABLE} (version INTEGER)")
    connection.execute(f"INSERT INTO {SCHEMA_VERSION_TABLE} VALUES (1)")
    connection.execute(
        f"INSERT INTO {SSO_SESSIONS} (session_id, nonce_hash, client_redirect_url,"
        " expires_ts) VALUES ('s', 'n', 'https://c.example/', 5)"
    )
    assert _migrate(connection) == 1
    assert _rows(connection, SCHEMA_VERSION_TABLE) == [(SCHEMA_VERSION,)]
    sessions = connection.execute(
        f"SELECT session_id, assign_user_key FROM {SSO_SESSIONS}"
    )
    assert sessions.fetchall() == [("s", None)]
    assert _rows(connection, SSO_CLAIMS) == []
    tables = {
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert "login_redirect_sso_attributes" not in tables
