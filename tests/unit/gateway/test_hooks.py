"""The gateway's hold on Synapse's client API, against Synapse's own classes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from synapse.http.server import _PathEntry
from twisted.web.resource import Resource

from synapse_login_redirect._synapse import (
    LOGIN_SERVLET,
    IncompatibleSynapseError,
    RouteCallback,
    install_route_hooks,
)
from synapse_login_redirect.gateway.hooks import LoginGateway


async def synapse_login(request: Any) -> tuple[int, Any]:
    return 200, {}


async def synapse_sync(request: Any) -> tuple[int, Any]:
    return 200, {}


class FakeClientResource(Resource):
    """Shaped like Synapse's JsonResource: a route table of _PathEntry."""

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[Any, dict[bytes, _PathEntry]] = {
            "login": {
                b"GET": _PathEntry(synapse_login, LOGIN_SERVLET),
                b"POST": _PathEntry(synapse_login, LOGIN_SERVLET),
            },
            "sync": {b"GET": _PathEntry(synapse_sync, "SyncRestServlet")},
        }


def marker(original: RouteCallback) -> RouteCallback:
    async def hooked(request: Any) -> Any:
        return await original(request)

    return hooked


HOOKS = {(LOGIN_SERVLET, b"POST"): marker}


def test_hooks_only_the_named_routes() -> None:
    resource = FakeClientResource()
    assert install_route_hooks(resource, HOOKS) == {(LOGIN_SERVLET, b"POST")}
    assert resource._routes["login"][b"POST"].callback is not synapse_login
    assert resource._routes["login"][b"POST"].servlet_classname == LOGIN_SERVLET
    assert resource._routes["login"][b"GET"].callback is synapse_login
    assert resource._routes["sync"][b"GET"].callback is synapse_sync


def test_hooking_twice_wraps_once() -> None:
    resource = FakeClientResource()
    install_route_hooks(resource, HOOKS)
    first = resource._routes["login"][b"POST"].callback
    install_route_hooks(resource, HOOKS)
    assert resource._routes["login"][b"POST"].callback is first


@pytest.mark.parametrize(
    ("routes", "what"),
    [
        (None, "has no route table"),
        ({"login": ["POST"]}, "is not a method map"),
        ({"login": {b"POST": object()}}, "has no servlet name or callback"),
    ],
)
def test_changed_synapse_internals_refuse_to_start(routes: Any, what: str) -> None:
    resource = Resource()
    if routes is not None:
        resource._routes = routes  # type: ignore[attr-defined]
    with pytest.raises(IncompatibleSynapseError, match=what) as info:
        install_route_hooks(resource, HOOKS)
    assert "does not support Synapse 1." in str(info.value)


SSO_KEY = ("SsoRedirectServlet", b"GET")


class RegisteringClientResource(FakeClientResource):
    """A client resource that also takes new routes, as JsonResource does."""

    def register_paths(
        self, method: str, patterns: Any, callback: Any, classname: str
    ) -> None:
        for pattern in patterns:
            self._routes[pattern] = {
                method.encode(): _PathEntry(callback, classname),
            }


def test_gateway_hooks_each_client_resource_it_is_given() -> None:
    gateway = LoginGateway(HOOKS)
    first, second = FakeClientResource(), FakeClientResource()
    gateway.attach(first)
    gateway.attach(second)
    assert gateway.hooked == {(LOGIN_SERVLET, b"POST")}
    for resource in (first, second):
        assert resource._routes["login"][b"POST"].callback is not synapse_login


def test_gateway_adds_missing_routes_only_beside_the_login() -> None:
    hooks = {**HOOKS, SSO_KEY: marker}
    pattern = re.compile("sso-pattern")
    gateway = LoginGateway(hooks, {SSO_KEY: [pattern]})
    with_login = RegisteringClientResource()
    media_only = RegisteringClientResource()
    del media_only._routes["login"]
    gateway.attach(with_login)
    gateway.attach(media_only)
    assert with_login._routes[pattern][b"GET"].servlet_classname == SSO_KEY[0]
    assert pattern not in media_only._routes
    assert gateway.hooked == {(LOGIN_SERVLET, b"POST"), SSO_KEY}
