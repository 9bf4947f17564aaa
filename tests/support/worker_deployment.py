"""What tests know of the portal on workers (fixture ``workers`` in
tests/live/workers/conftest.py): its processes, users and settings."""

from __future__ import annotations

import itertools

import attr

from deploy.homeserver import Homeserver
from deploy.workers import Nginx, Worker
from synapse_login_redirect.routing.engine import WeightedPool
from tests.support.idp.oidc import OidcProvider

HEALTH_INTERVAL = 1
# A user of the portal's own homeserver.
PORTAL_USER = "pat"
CLIENT = "http://client.test/cb"
POOL = {"eng": 1, "hist": 1}
NEW_USERS = tuple(f"new{i:02}" for i in range(40))
# New users the pool puts on eng while it is healthy, registered on hist only.
MOVED_USERS = tuple(
    itertools.islice(
        (
            u
            for u in map("moved{:02}".format, itertools.count())
            if WeightedPool(POOL).pick(u) == "eng"
        ),
        4,
    )
)


@attr.s(frozen=True, auto_attribs=True)
class WorkerDeployment:
    main: Homeserver
    client1: Worker
    client2: Worker
    federation: Worker
    background: Worker
    nginx: Nginx
    eng: Homeserver
    hist: Homeserver
    postgres_db: str
    idp: OidcProvider
    started_at: float  # time.time() once every process answered

    @property
    def portal(self) -> list[Homeserver]:
        """The portal's processes."""
        return [self.main, self.client1, self.client2, self.federation, self.background]

    @property
    def routers(self) -> list[Homeserver]:
        """The portal's processes with a client listener."""
        return [self.main, self.client1, self.client2]

    @property
    def targets(self) -> dict[str, Homeserver]:
        return {"eng": self.eng, "hist": self.hist}

    @property
    def homeservers(self) -> list[Homeserver]:
        return [*self.portal, self.eng, self.hist]
