"""The module's own tables in Synapse's database (sqlite or PostgreSQL).

Reached through ``ModuleApi.run_db_interaction`` so every worker shares them.
Each table is created on first use with ``CREATE TABLE IF NOT EXISTS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from synapse.module_api import LoggingTransaction, ModuleApi

P = ParamSpec("P")
T = TypeVar("T")


class ModuleTables:
    """Runs transactions once the given tables exist."""

    def __init__(self, api: ModuleApi, *create_statements: str) -> None:
        self._api = api
        self._create_statements = create_statements
        self._ready = False

    async def run(
        self,
        desc: str,
        func: Callable[Concatenate[LoggingTransaction, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        if not self._ready:
            await self._api.run_db_interaction("login_redirect_create", self._create)
            self._ready = True
        return await self._api.run_db_interaction(desc, func, *args, **kwargs)

    def _create(self, txn: LoggingTransaction) -> None:
        for statement in self._create_statements:
            txn.execute(statement)

    def now_ms(self) -> int:
        return self._api.get_current_time_msec()
