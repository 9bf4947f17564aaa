"""The start-up checks of what the module needs from Synapse, against Synapse's
own classes: each missing piece refuses to start, naming Synapse's version."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from synapse.api.auth.base import BaseAuth
from synapse.api.ratelimiting import Ratelimiter
from synapse.app.generic_worker import GenericWorkerStore
from synapse.appservice import ApplicationService
from synapse.handlers.auth import AuthHandler
from synapse.module_api import ModuleApi, UserID
from synapse.storage.databases.main import DataStore

from synapse_login_redirect import _synapse
from synapse_login_redirect._synapse import (
    MODULE_API_MEMBERS,
    IncompatibleSynapseError,
    check_appservice_support,
    check_synapse_support,
    guard_sso_completions,
    release,
)
from synapse_login_redirect.supported import SUPPORTED_SYNAPSE

PACKAGE = Path(_synapse.__file__).parent
VERSION = "1.140.0 (b=develop,0123abc)"


@pytest.fixture(autouse=True)
def _version(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Synapse version of our choosing, for the error messages."""
    monkeypatch.setattr(_synapse, "SYNAPSE_VERSION", VERSION)


def fake_api(
    store: type = DataStore, config_sections: dict[str, object] | None = None
) -> ModuleApi:
    """A ModuleApi whose homeserver hands out Synapse's own handler and store classes."""
    sections = {
        "server": SimpleNamespace(listeners=[]),
        "worker": SimpleNamespace(worker_listeners=[]),
        "sso": SimpleNamespace(sso_client_whitelist=[]),
        "ratelimiting": SimpleNamespace(rc_login_address=None),
        **(config_sections or {}),
    }
    hs = SimpleNamespace(
        get_auth_handler=lambda: AuthHandler,
        get_datastores=lambda: SimpleNamespace(main=store),
        config=SimpleNamespace(**sections),
    )
    return cast(ModuleApi, SimpleNamespace(_hs=hs))


def refused(api: ModuleApi | None = None) -> str:
    with pytest.raises(IncompatibleSynapseError) as info:
        if api is None:
            check_appservice_support()
        else:
            check_synapse_support(api)
    message = str(info.value)
    assert f"does not support Synapse {VERSION}: " in message
    assert f"for Synapse {SUPPORTED_SYNAPSE} and newer" in message
    return message


@pytest.mark.parametrize("store", [DataStore, GenericWorkerStore])
def test_this_synapse_has_everything(store: type) -> None:
    """On main and on workers (whose datastore is another class)."""
    check_synapse_support(fake_api(store))
    check_appservice_support()


@pytest.mark.parametrize(
    "version", [SUPPORTED_SYNAPSE, "1.136.1", "1.150.0rc1 (b=develop,abc)", "2.0.0"]
)
def test_supported_releases_start(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(_synapse, "SYNAPSE_VERSION", version)
    check_synapse_support(fake_api())


@pytest.mark.parametrize("version", ["1.135.2", "1.121.1 (b=develop,abc)", "0.99.5"])
def test_older_releases_refuse_to_start(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(_synapse, "SYNAPSE_VERSION", version)
    with pytest.raises(IncompatibleSynapseError) as info:
        check_synapse_support(fake_api())
    assert str(info.value).startswith(
        f"synapse-login-redirect does not support Synapse {version}: "
        f"it is older than {SUPPORTED_SYNAPSE}."
    )


def test_an_unreadable_version_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_synapse, "SYNAPSE_VERSION", "develop")
    with pytest.raises(IncompatibleSynapseError, match="cannot read the version"):
        check_synapse_support(fake_api())


def test_release_reads_the_leading_version() -> None:
    assert release("1.163.2 (b=versions,74cdfa9)") == (1, 163, 2)
    assert release("1.9.0") < release("1.136.0") < release("1.163.0")


@pytest.mark.parametrize("name", MODULE_API_MEMBERS)
def test_every_module_api_member_is_checked(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.delattr(ModuleApi, name)
    assert f"ModuleApi has no {name}." in refused(fake_api())


def test_the_checked_members_are_all_the_package_uses() -> None:
    """Every ``api.x`` in the package is checked, and Synapse's internals
    (``_hs``) are touched only in _synapse."""
    used: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        used |= set(
            re.findall(r"(?<![\w.])(?:self\._api|module_api|api)\.(\w+)", source)
        )
        if path.name != "_synapse.py":
            assert "_hs" not in source, path.name
    assert used - {"_hs"} == set(MODULE_API_MEMBERS)


@pytest.mark.parametrize(
    ("owner", "name", "what"),
    [
        (AuthHandler, "consume_login_token", "the auth handler"),
        (DataStore, "get_external_ids_by_user", "the main datastore"),
        (DataStore, "get_app_service_by_token", "the main datastore"),
        (BaseAuth, "get_access_token_from_request", "BaseAuth"),
    ],
)
def test_internals_used_at_login_time_are_checked_at_start_up(
    monkeypatch: pytest.MonkeyPatch, owner: type, name: str, what: str
) -> None:
    # Found on a base class: take it away there.
    base = next(c for c in owner.__mro__ if name in vars(c))
    monkeypatch.delattr(base, name)
    assert f"{what} has no {name}." in refused(fake_api())


@pytest.mark.parametrize(
    ("section", "name"),
    [
        ("server", "listeners"),
        ("worker", "worker_listeners"),
        ("sso", "sso_client_whitelist"),
        ("ratelimiting", "rc_login_address"),
    ],
)
def test_config_the_module_reads_is_checked(section: str, name: str) -> None:
    api = fake_api(config_sections={section: SimpleNamespace()})
    assert f"config.{section}.{name} is missing." in refused(api)


def test_the_ratelimiter_signature_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    def changed(self: Ratelimiter, store: Any, clock: Any, settings: Any) -> None:
        pass

    monkeypatch.setattr(Ratelimiter, "__init__", changed)
    assert "Ratelimiter takes no store, clock and cfg." in refused(fake_api())


def test_appservice_sender_must_be_a_user_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Synapse before 1.135 kept the sender as a str."""

    def before_1_135(
        self: ApplicationService,
        token: str,
        sender: str,
        msc4190_device_management: bool = False,
    ) -> None:
        pass

    monkeypatch.setattr(ApplicationService, "__init__", before_1_135)
    assert "ApplicationService.sender is not a UserID." in refused()


def test_appservice_sender_annotation_may_be_a_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As under ``from __future__ import annotations`` (this file has it)."""

    def postponed(
        self: ApplicationService,
        sender: UserID,
        msc4190_device_management: bool = False,
    ) -> None:
        pass

    monkeypatch.setattr(ApplicationService, "__init__", postponed)
    check_appservice_support()


def test_appservice_msc4190_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    def before_1_121(self: ApplicationService, sender: Any) -> None:
        pass

    monkeypatch.setattr(ApplicationService, "__init__", before_1_121)
    assert "ApplicationService has no msc4190_device_management." in refused()


def test_appservice_namespace_check_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(ApplicationService, "is_interested_in_user")
    assert "ApplicationService has no is_interested_in_user." in refused()


class _SsoHandler:
    def __init__(self) -> None:
        self.completed: list[str] = []

    async def complete_sso_login_request(
        self,
        auth_provider_id: str,
        remote_user_id: str,
        request: Any,
        client_redirect_url: str,
        *args: Any,
    ) -> None:
        self.completed.append(client_redirect_url)


def _api_with(handler: object) -> ModuleApi:
    return cast(
        ModuleApi, SimpleNamespace(_hs=SimpleNamespace(get_sso_handler=lambda: handler))
    )


def test_sso_completions_go_through_the_guard() -> None:
    handler = _SsoHandler()
    guard_sso_completions(_api_with(handler), lambda request, url: "evil" not in url)
    for url in ("https://app.example/cb", "https://evil.example/cb"):
        asyncio.run(handler.complete_sso_login_request("idp", "ivy", None, url))
    assert handler.completed == ["https://app.example/cb"]


def test_changed_sso_completion_refuses_to_start() -> None:
    class Changed:
        async def complete_sso_login_request(self, request: Any) -> None: ...

    with pytest.raises(IncompatibleSynapseError, match="complete_sso_login_request"):
        guard_sso_completions(_api_with(Changed()), lambda request, url: True)
