"""Which user a password login at the portal is for."""

from __future__ import annotations

from typing import Any

import pytest

from synapse_login_redirect.gateway.login_body import LoginBody
from synapse_login_redirect.portal.logins import Portal, subject_of
from synapse_login_redirect.routing.engine import LoginSubject


@pytest.mark.parametrize(
    ("body", "subject"),
    [
        (
            {"identifier": {"type": "m.id.user", "user": "@Alice:Eng.Example"}},
            LoginSubject(localpart="alice", server_name="eng.example"),
        ),
        (
            {"identifier": {"type": "m.id.user", "user": " alice "}},
            LoginSubject(localpart="alice"),
        ),
        (
            {
                "identifier": {
                    "type": "m.id.thirdparty",
                    "medium": "email",
                    "address": "Alice@Eng.Example",
                }
            },
            LoginSubject(email="alice@eng.example"),
        ),
        ({"user": "@bob:hist.example"}, LoginSubject("bob", "hist.example")),
        ({"user": "@Élise:hist.example"}, LoginSubject("élise", "hist.example")),
        (
            {"medium": "email", "address": "bob@hist.example"},
            LoginSubject(email="bob@hist.example"),
        ),
        # Synapse logs in the deprecated fields' user, so the portal routes it.
        (
            {
                "identifier": {"type": "m.id.user", "user": "victim"},
                "user": "@me:hist.example",
            },
            LoginSubject("me", "hist.example"),
        ),
        (
            {
                "identifier": {"type": "m.id.user", "user": "victim"},
                "user": "@me:hist.example",
                "medium": "email",
                "address": "me@eng.example",
            },
            LoginSubject(email="me@eng.example"),
        ),
        (
            {"identifier": {"type": "m.id.user", "user": "alice"}, "user": ""},
            LoginSubject(localpart="alice"),
        ),
    ],
)
def test_routable_identifiers(body: dict[str, Any], subject: LoginSubject) -> None:
    assert subject_of(LoginBody.of(body)) == subject


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"identifier": "alice"},
        {"identifier": {"type": "m.id.user"}},
        {"identifier": {"type": "m.id.user", "user": ""}},
        {"identifier": {"type": "m.id.user", "user": 5}},
        {"identifier": {"type": "m.id.phone", "country": "GB", "phone": "123"}},
        {"identifier": {"type": "m.id.thirdparty", "medium": "msisdn", "address": "1"}},
        {"identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "x"}},
        {"identifier": {"type": "m.id.nosuch", "user": "alice"}},
        {"user": ["alice"]},
        {"medium": "email"},
        # Nobody who could exist: never routed, so never remembered.
        {"user": "@"},
        {"user": "@alice"},
        {"user": "al ice"},
        {"user": "alice\u0000"},
        {"user": "x" * 300},
        {"user": "@alice:" + "x" * 250},
        {"user": "@:eng.example"},
        {"medium": "email", "address": "@"},
        {"medium": "email", "address": "alice@"},
        {"medium": "email", "address": "@eng.example"},
        {"medium": "email", "address": "a" * 250 + "@eng.example"},
    ],
)
def test_unroutable_bodies_are_left_to_synapse(body: dict[str, Any]) -> None:
    assert subject_of(LoginBody.of(body)) is None


REALM = {"id": "login-redirect-realm", "name": "Choose your organisation"}


def test_realm_page_joins_the_listed_providers_once() -> None:
    corp = {"id": "oidc-corp", "name": "Corp"}
    flows: list[Any] = [
        {"type": "m.login.password"},
        {"type": "m.login.sso", "identity_providers": [corp]},
    ]
    Portal._list_realm_page(flows, REALM)
    Portal._list_realm_page(flows, REALM)
    assert flows[1]["identity_providers"] == [corp, REALM]
    assert flows[0] == {"type": "m.login.password"}


def test_realm_page_is_the_only_provider_of_a_portal_without_idps() -> None:
    flows: list[Any] = [{"type": "m.login.sso"}]
    Portal._list_realm_page(flows, REALM)
    assert flows == [{"type": "m.login.sso", "identity_providers": [REALM]}]
