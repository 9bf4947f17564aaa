"""The portal counts the logins it routes against Synapse's ``rc_login.address``.

Without it, a login the portal answers would skip the limit Synapse applies to
every login, and each one could store a new pool assignment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.homeserver import (
    Homeserver,
    address_limited,
    http,
    running,
)
from tests.support.deployment import PASSWORD
from tests.support.portal_deployment import PortalDeployment, portal_module_config

pytestmark = pytest.mark.live

BURST = 3
LOGIN = "/_matrix/client/v3/login"


@pytest.fixture(scope="module")
def limited_portal(portals: PortalDeployment, workdir: Path) -> Iterator[Homeserver]:
    """A proxying portal whose address limit allows BURST logins, then one a
    thousand seconds."""
    directory = workdir / "limited-directory.tsv"
    directory.write_text("")
    hs = Homeserver(
        "portal-limited",
        workdir,
        module_config=portal_module_config(
            {"eng": portals.eng, "hist": portals.hist},
            "proxy",
            directory,
            pool={"eng": 1},
        ),
        extra_config=address_limited(BURST),
    )
    with running([hs]):
        yield hs


def eng_logins(portals: PortalDeployment) -> int:
    log = portals.eng.log_path.read_bytes()
    return log.count(b'"POST /_matrix/client/v3/login HTTP/1.1"')


def test_logins_over_the_limit_get_429_and_go_nowhere(
    portals: PortalDeployment, limited_portal: Homeserver
) -> None:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "@erin:eng.test"},
        "password": PASSWORD,
    }
    answers = [http("POST", limited_portal.url(LOGIN), body) for _ in range(BURST)]
    assert [a.status for a in answers] == [200] * BURST, answers
    before = eng_logins(portals)
    limited = http("POST", limited_portal.url(LOGIN), body)
    assert limited.status == 429, limited
    assert limited.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert limited.json()["retry_after_ms"] > 0
    assert eng_logins(portals) == before  # the password was not sent on
    # A user the portal would keep is limited alike: one limit per address.
    pat = {**body, "identifier": {"type": "m.id.user", "user": "@pat:portal.test"}}
    assert http("POST", limited_portal.url(LOGIN), pat).status == 429
