"""A third-party login module with its own login type, to prove ours composes."""

from __future__ import annotations

from typing import Any

from synapse.module_api import ModuleApi

PIN_TYPE = "org.example.login.pin"
PIN = "4321"


class PinLogin:
    def __init__(self, config: dict[str, Any], api: ModuleApi) -> None:
        self._api = api
        api.register_password_auth_provider_callbacks(
            auth_checkers={(PIN_TYPE, ("pin",)): self._check}
        )

    @staticmethod
    def parse_config(config: dict[str, Any]) -> dict[str, Any]:
        return config

    async def _check(
        self, username: str, login_type: str, login_dict: dict[str, Any]
    ) -> tuple[str, None] | None:
        if login_dict.get("pin") != PIN:
            return None
        return self._api.get_qualified_user_id(username), None
