"""The gateway's hold on Synapse's client API, against Synapse's own classes."""

from __future__ import annotations

from typing import Any, cast

import pytest
from synapse.http.server import UnrecognizedRequestResource, _PathEntry
from twisted.web.resource import EncodingResourceWrapper, IResource, Resource
from twisted.web.server import GzipEncoderFactory

from synapse_login_redirect.gateway import LoginGateway
from synapse_login_redirect.synapse_compat import (
    LOGIN_SERVLET,
    IncompatibleSynapseError,
    RouteCallback,
    install_route_hooks,
)


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


def test_gzip_wrapped_client_resource_is_hooked() -> None:
    resource = FakeClientResource()
    wrapped = EncodingResourceWrapper(resource, [GzipEncoderFactory()])
    assert install_route_hooks(wrapped, HOOKS) == {(LOGIN_SERVLET, b"POST")}


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


def test_gateway_hooks_client_and_keeps_every_other_child() -> None:
    gateway = LoginGateway(HOOKS)
    federation = Resource()
    client = FakeClientResource()
    gateway.putChild(b"federation", cast(IResource, federation))
    assert gateway.hooked == set()
    gateway.putChild(b"client", cast(IResource, client))
    assert gateway.hooked == {(LOGIN_SERVLET, b"POST")}
    assert gateway.children == {b"federation": federation, b"client": client}
    assert isinstance(gateway, UnrecognizedRequestResource)
