"""The claims of the portal's own IdPs are kept by IdP and subject, and taken
once by the bounce of the sign-in that brought them (issue 11, item 7)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from synapse_login_redirect._synapse import IncompatibleSynapseError
from synapse_login_redirect.sso import oidc_mapping
from synapse_login_redirect.sso.oidc_mapping import OidcMappingProvider
from synapse_login_redirect.store.idp_claims import CLAIMS_LIFETIME_MS, IdpClaimTable
from synapse_login_redirect.store.tables import module_tables
from tests.support.fakes import SqliteApi


class FakeApi(SqliteApi):
    """What IdpClaimTable and the mapping providers use of the ModuleApi, on sqlite."""

    def __init__(self, oidc_providers: list[Any] | None = None) -> None:
        super().__init__()
        self._hs = SimpleNamespace(
            config=SimpleNamespace(oidc=SimpleNamespace(oidc_providers=oidc_providers))
        )


@pytest.fixture
def api() -> Iterator[FakeApi]:
    yield FakeApi()


@pytest.fixture(autouse=True)
def _any_synapse(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake is no Synapse: its support is checked in test_synapse."""
    monkeypatch.setattr(oidc_mapping, "check_synapse_support", lambda api: None)


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_claims_are_kept_apart_by_idp(api: FakeApi) -> None:
    store = IdpClaimTable(module_tables(api.as_module_api()))
    _run(store.remember_claims("oidc-a", "ivy", {"department": ["History"]}))
    _run(store.remember_claims("oidc-b", "ivy", {"email": ["ivy@eng.example"]}))
    assert _run(store.take_claims("oidc-b", "ivy", 0)) == {"email": ["ivy@eng.example"]}
    assert _run(store.take_claims("oidc-a", "ivy", 0)) == {"department": ["History"]}
    assert _run(store.take_claims("oidc-c", "ivy", 0)) is None


def test_claims_are_taken_once(api: FakeApi) -> None:
    store = IdpClaimTable(module_tables(api.as_module_api()))
    _run(store.remember_claims("oidc-a", "ivy", {"department": ["History"]}))
    assert _run(store.take_claims("oidc-a", "ivy", 0)) is not None
    assert _run(store.take_claims("oidc-a", "ivy", 0)) is None


def test_claims_kept_before_the_session_began_are_not_its_own(api: FakeApi) -> None:
    store = IdpClaimTable(module_tables(api.as_module_api()))
    _run(store.remember_claims("oidc-a", "ivy", {"department": ["History"]}))
    assert _run(store.take_claims("oidc-a", "ivy", api.now + 1)) is None
    assert _run(store.take_claims("oidc-a", "ivy", api.now)) is not None


def test_a_later_sign_in_replaces_the_claims(api: FakeApi) -> None:
    store = IdpClaimTable(module_tables(api.as_module_api()))
    _run(store.remember_claims("oidc-a", "ivy", {"department": ["History"]}))
    api.now += 10
    _run(store.remember_claims("oidc-a", "ivy", {"department": ["Physics"]}))
    assert _run(store.take_claims("oidc-a", "ivy", api.now)) == {
        "department": ["Physics"]
    }


def test_claims_expire(api: FakeApi) -> None:
    store = IdpClaimTable(module_tables(api.as_module_api()))
    _run(store.remember_claims("oidc-a", "ivy", {"department": ["History"]}))
    api.now += CLAIMS_LIFETIME_MS + 1
    assert _run(store.take_claims("oidc-a", "ivy", 0)) is None


def _provider(api: FakeApi, config: Any) -> OidcMappingProvider:
    return OidcMappingProvider(config, api.as_module_api())


def test_oidc_mapping_provider_keeps_claims_under_its_own_idp() -> None:
    configs = [
        OidcMappingProvider.parse_config({"localpart_template": "{{ user.sub }}"})
        for _ in range(2)
    ]
    api = FakeApi(
        [
            SimpleNamespace(idp_id="oidc-a", user_mapping_provider_config=configs[0]),
            SimpleNamespace(idp_id="oidc-b", user_mapping_provider_config=configs[1]),
        ]
    )
    first, other = (_provider(api, config) for config in configs)
    _run(first.get_extra_attributes({"sub": "ivy", "department": "History"}, {}))
    _run(other.get_extra_attributes({"sub": "ivy", "email": "ivy@eng.example"}, {}))
    store = IdpClaimTable(module_tables(api.as_module_api()))
    assert _run(store.take_claims("oidc-b", "ivy", 0)) == {
        "sub": ["ivy"],
        "email": ["ivy@eng.example"],
    }
    assert _run(store.take_claims("oidc-a", "ivy", 0)) == {
        "sub": ["ivy"],
        "department": ["History"],
    }


def test_oidc_mapping_provider_whose_idp_cannot_be_told_refuses_to_start() -> None:
    config = OidcMappingProvider.parse_config({})
    api = FakeApi([SimpleNamespace(idp_id="oidc-a", user_mapping_provider_config={})])
    with pytest.raises(IncompatibleSynapseError, match="exactly one"):
        _provider(api, config)
