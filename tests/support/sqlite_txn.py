"""A sqlite cursor shaped like the part of Synapse's LoggingTransaction the
module's stores use."""

from __future__ import annotations

import sqlite3
from typing import Any


class SqliteTxn:
    database_engine = None  # not PostgreSQL

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._cursor = connection.cursor()

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        self._cursor.execute(sql, args)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount
