"""The login gateway: the module's one interception point in Synapse.

Registered at ``/_matrix``, it receives Synapse's own children of that path
(``client``, ``media``, ``federation``, ...) and passes every request to them
untouched. When it receives the client API it wraps the login routes named in
its hooks, so Synapse still parses, rate-limits and renders those requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from twisted.web.resource import IResource
from twisted.web.server import Request

from synapse_login_redirect.synapse_compat import (
    GatewayBase,
    RouteHook,
    RouteKey,
    install_route_hooks,
)

logger = logging.getLogger(__name__)

CLIENT_CHILD = b"client"
# Given a request, the resource that answers it instead of Synapse, if any.
Override = Callable[[Request], "IResource | None"]


class LoginGateway(GatewayBase):
    """Synapse's ``/_matrix`` node, with the login routes of its client API hooked."""

    def __init__(
        self,
        hooks: Mapping[RouteKey, RouteHook],
        overrides: Sequence[Override] = (),
    ) -> None:
        """``overrides``: tried in order on every request under ``/_matrix``."""
        super().__init__()  # type: ignore[no-untyped-call]
        self._hooks = hooks
        self._overrides = tuple(overrides)
        self.hooked: set[RouteKey] = set()
        self.received_children = False

    def putChild(self, path: bytes, child: IResource) -> None:  # noqa: N802
        super().putChild(path, child)
        self.received_children = True
        if path == CLIENT_CHILD:
            self.hooked |= install_route_hooks(child, self._hooks)
            logger.info(
                "Login gateway hooked %s",
                ", ".join(f"{m.decode()} {c}" for c, m in sorted(self.hooked)),
            )

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:  # noqa: N802
        for override in self._overrides:
            resource = override(request)
            if resource is not None:
                return resource
        return super().getChildWithDefault(path, request)  # type: ignore[no-untyped-call,no-any-return]
