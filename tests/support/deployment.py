"""What tests know of the session-wide live homeservers (fixture ``deployment``
in tests/live/conftest.py): the servers, the password of every test user, and
the appservices and secrets the servers are configured with."""

from __future__ import annotations

from typing import Any

import attr

from deploy.homeserver import Homeserver

PASSWORD = "correct horse battery staple"
IDENTITY_SERVER = "https://id.example.org"
JWT_SECRET = "jwt-secret-for-tests"
BRIDGE_USER_PREFIX = "bridge_"


@attr.s(frozen=True, auto_attribs=True)
class Appservice:
    id: str
    as_token: str
    user_prefix: str
    sender_localpart: str
    rate_limited: bool = False
    msc4190: bool = False

    def registration(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": None,
            "as_token": self.as_token,
            "hs_token": f"hs-token-{self.id}",
            "sender_localpart": self.sender_localpart,
            "rate_limited": self.rate_limited,
            "io.element.msc4190": self.msc4190,
            "namespaces": {
                "users": [{"exclusive": True, "regex": f"@{self.user_prefix}.*"}],
                "aliases": [],
                "rooms": [],
            },
        }


BRIDGE = Appservice("bridge", "as-token-bridge", BRIDGE_USER_PREFIX, "bridgebot")
OTHER_BRIDGE = Appservice("other", "as-token-other", "other_", "otherbot")
MSC4190_BRIDGE = Appservice(
    "msc4190", "as-token-msc4190", "m4190_", "m4190bot", msc4190=True
)
LIMITED_BRIDGE = Appservice(
    "limited", "as-token-limited", "lim_", "limbot", rate_limited=True
)
APPSERVICES = (BRIDGE, OTHER_BRIDGE, MSC4190_BRIDGE, LIMITED_BRIDGE)
AS_TOKEN = BRIDGE.as_token
LIMITED_BURST = 3


@attr.s(frozen=True, auto_attribs=True)
class Deployment:
    target: Homeserver
    target_nopub: Homeserver
    vanilla: Homeserver
    as_compat: Homeserver
    as_limited: Homeserver

    @property
    def advertised_target_url(self) -> str:
        return f"http://localhost:{self.target.port}"

    @property
    def all(self) -> list[Homeserver]:
        return [
            self.target,
            self.target_nopub,
            self.vanilla,
            self.as_compat,
            self.as_limited,
        ]
