"""The login gateway: the module's one interception point in Synapse.

Synapse builds one client API resource per HTTP listener that serves
``client``. The gateway hooks the login routes of each as it is built, so
Synapse still parses, rate-limits and renders those requests, and adds the
routes the module serves where Synapse has none (the portal's SSO redirect
when the portal has no IdP of its own). Nothing else in any listener's tree
changes: a listener serves exactly what its config names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from re import Pattern

from twisted.web.resource import Resource

from synapse_login_redirect._synapse import (
    LOGIN_SERVLET,
    RouteHook,
    RouteKey,
    add_route,
    install_route_hooks,
    unrecognized_route,
)

logger = logging.getLogger(__name__)

LOGIN_ROUTE: RouteKey = (LOGIN_SERVLET, b"POST")


class LoginGateway:
    """Hooks the login routes of every client API resource of this process."""

    def __init__(
        self,
        hooks: Mapping[RouteKey, RouteHook],
        missing_routes: Mapping[RouteKey, Sequence[Pattern[str]]] | None = None,
    ) -> None:
        """``missing_routes``: for a hooked route Synapse may not register, the
        path patterns to serve it at (hooked around Synapse's 404)."""
        self._hooks = hooks
        self._missing_routes = missing_routes or {}
        self.hooked: set[RouteKey] = set()

    def attach(self, client_resource: Resource) -> None:
        """Hook one listener's client API resource."""
        installed = install_route_hooks(client_resource, self._hooks)
        if LOGIN_ROUTE not in installed:
            return  # e.g. a worker's media-only client resource
        for key, patterns in self._missing_routes.items():
            if key not in installed:
                hooked = self._hooks[key](unrecognized_route)
                add_route(client_resource, key, patterns, hooked)
                installed.add(key)
        self.hooked |= installed
        if installed:
            logger.info(
                "Login gateway hooked %s",
                ", ".join(f"{m.decode()} {c}" for c, m in sorted(installed)),
            )
