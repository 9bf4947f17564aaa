"""Password logins at a portal end on the user's own homeserver (MSC1730)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from deploy.homeserver import Homeserver, HttpResponse, http, postgres
from tests.support.deployment import PASSWORD
from tests.support.logs import wait_for_log
from tests.support.portal_deployment import (
    EMAILS,
    LOCKED_AFTER,
    POOL_USERS,
    PROXY_TIMEOUT,
    UNPLACED_MESSAGE,
    PortalDeployment,
    portal_module_config,
)
from tests.support.spec import validate_login_flows, validate_login_response

pytestmark = pytest.mark.live

MODES = ("redirect", "proxy")


def by_user(user: str) -> dict[str, Any]:
    return {"type": "m.id.user", "user": user}


def by_email(address: str) -> dict[str, Any]:
    return {"type": "m.id.thirdparty", "medium": "email", "address": address}


def password_body(
    identifier: dict[str, Any], password: str = PASSWORD
) -> dict[str, Any]:
    return {"type": "m.login.password", "identifier": identifier, "password": password}


def portal_of(portals: PortalDeployment, mode: str) -> Homeserver:
    return portals.portal if mode == "redirect" else portals.portal_proxy


def login_at(
    portal: Homeserver,
    body: Any,
    *,
    version: str = "v3",
    headers: dict[str, str] | None = None,
) -> tuple[HttpResponse, HttpResponse | None]:
    """POST /login at the portal, then re-post to a 307's Location as a client does."""
    url = portal.url(f"/_matrix/client/{version}/login")
    first = http("POST", url, body, headers=headers)
    if first.status != 307:
        return first, None
    return http("POST", first.headers["location"], body), first


def whoami(base_url: str, token: str) -> HttpResponse:
    return http(
        "GET",
        f"{base_url}/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {token}"},
    )


def assert_logged_in_on(response: HttpResponse, hs: Homeserver, localpart: str) -> None:
    """A 200 login for ``localpart`` whose ``well_known`` leads to ``hs``."""
    assert response.status == 200, response
    body = response.json()
    validate_login_response(body)
    assert body["user_id"] == f"@{localpart}:{hs.server_name}"
    base_url = body["well_known"]["m.homeserver"]["base_url"]
    assert base_url == hs.base_url
    assert whoami(base_url, body["access_token"]).json()["user_id"] == body["user_id"]


CASES = [
    # (identifier, target, localpart, rule)
    (by_user("@erin:eng.test"), "eng", "erin", "server name"),
    (by_user("@hugo:hist.test"), "hist", "hugo", "server name"),
    (by_user("hist_hana"), "hist", "hist_hana", "localpart pattern"),
    (by_user("carol"), "eng", "carol", "directory"),
    (by_email(EMAILS["erin"]), "eng", "erin", "email domain"),
    (by_email(EMAILS["hugo"]), "hist", "hugo", "email domain"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("identifier", "target", "localpart", "rule"), CASES)
def test_login_reaches_the_users_homeserver(
    portals: PortalDeployment,
    mode: str,
    identifier: dict[str, Any],
    target: str,
    localpart: str,
    rule: str,
) -> None:
    hs = portals.targets[target]
    final, redirect = login_at(portal_of(portals, mode), password_body(identifier))
    assert_logged_in_on(final, hs, localpart)
    if mode == "redirect":
        assert redirect is not None
        assert redirect.headers["location"] == hs.url("/_matrix/client/v3/login")
    else:
        assert redirect is None
        assert final.json()["base_cs_url"] == hs.base_url


@pytest.mark.parametrize("version", ["r0", "v3"])
def test_redirect_keeps_the_api_version(
    portals: PortalDeployment, version: str
) -> None:
    final, redirect = login_at(
        portals.portal, password_body(by_user("@erin:eng.test")), version=version
    )
    assert redirect is not None and redirect.status == 307
    assert redirect.headers["location"] == portals.eng.url(
        f"/_matrix/client/{version}/login"
    )
    assert_logged_in_on(final, portals.eng, "erin")


def test_legacy_top_level_user_is_routed(portals: PortalDeployment) -> None:
    body = {"type": "m.login.password", "user": "hist_hana", "password": PASSWORD}
    final, _ = login_at(portals.portal_proxy, body)
    assert_logged_in_on(final, portals.hist, "hist_hana")


@pytest.mark.parametrize("mode", MODES)
def test_self_logs_in_at_the_portal(portals: PortalDeployment, mode: str) -> None:
    portal = portal_of(portals, mode)
    final, redirect = login_at(
        portal, password_body(by_user(f"@pat:{portal.server_name}"))
    )
    assert redirect is None
    assert_logged_in_on(final, portal, "pat")


@pytest.mark.parametrize("mode", MODES)
def test_wrong_password_is_the_targets_answer(
    portals: PortalDeployment, mode: str
) -> None:
    body = password_body(by_user("@erin:eng.test"), "wrong")
    final, _ = login_at(portal_of(portals, mode), body)
    direct = http("POST", portals.eng.url("/_matrix/client/v3/login"), body)
    assert (final.status, final.json()) == (direct.status, direct.json())
    assert final.json()["errcode"] == "M_FORBIDDEN"


def test_rate_limit_reaches_the_client_unchanged(portals: PortalDeployment) -> None:
    body = password_body(by_user("hist_locked"), "wrong")
    answers = [login_at(portals.portal_proxy, body)[0] for _ in range(LOCKED_AFTER + 1)]
    assert [a.status for a in answers[:LOCKED_AFTER]] == [403] * LOCKED_AFTER
    limited = answers[-1]
    assert limited.status == 429, limited
    assert limited.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert limited.json()["retry_after_ms"] > 0


def test_target_400_reaches_the_client_unchanged(portals: PortalDeployment) -> None:
    body = {**password_body(by_user("@erin:eng.test")), "refresh_token": "yes"}
    final, _ = login_at(portals.portal_proxy, body)
    direct = http("POST", portals.eng.url("/_matrix/client/v3/login"), body)
    assert direct.status == 400
    assert (final.status, final.json()) == (direct.status, direct.json())


BAD_BODIES = [
    ("not json", b"{not json", "M_NOT_JSON"),
    ("a JSON list", b"[]", "M_BAD_JSON"),
    (
        "unknown identifier type",
        b'{"type": "m.login.password", "identifier": {"type": "m.id.nosuch",'
        b' "user": "nobody_x1"}, "password": "p"}',
        None,
    ),
    (
        "no user",
        b'{"type": "m.login.password", "identifier": {"type": "m.id.user"},'
        b' "password": "p"}',
        None,
    ),
    (
        "no password",
        b'{"type": "m.login.password", "identifier": {"type": "m.id.user",'
        b' "user": "@nobody_x2:eng.test"}}',
        None,
    ),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("what", "raw", "errcode"), BAD_BODIES)
def test_bad_input_is_answered_by_the_portal_like_synapse(
    portals: PortalDeployment, mode: str, what: str, raw: bytes, errcode: str | None
) -> None:
    portal = portal_of(portals, mode)
    headers = {"Content-Type": "application/json"}
    url = "/_matrix/client/v3/login"
    answer = http("POST", portal.url(url), raw_body=raw, headers=headers)
    synapse = http("POST", portals.eng.url(url), raw_body=raw, headers=headers)
    assert answer.status == synapse.status != 307, (what, answer)
    assert answer.json() == synapse.json()
    if errcode is not None:
        assert answer.json()["errcode"] == errcode
    assert answer.status == 400
    assert b"Login of nobody_x" not in portal.log_path.read_bytes()
    assert b"Login of @nobody_x" not in portal.log_path.read_bytes()


def test_slow_target_gives_504_naming_it_and_is_tried_once(
    portals: PortalDeployment,
) -> None:
    before = len(portals.slow.received)
    started = time.monotonic()
    answer, _ = login_at(
        portals.portal_proxy,
        password_body(by_user("slow_sam")),
        headers={"X-Forwarded-For": "203.0.113.9", "User-Agent": "Element/1.11"},
    )
    elapsed = time.monotonic() - started
    assert answer.status == 504, answer
    assert answer.json()["errcode"] == "M_UNKNOWN"
    assert "Slow Lab" in answer.json()["error"]
    assert PROXY_TIMEOUT - 0.5 < elapsed < PROXY_TIMEOUT + 5
    time.sleep(0.5)
    requests = portals.slow.received[before:]
    assert len(requests) == 1, requests
    head = requests[0].split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"post /_matrix/client/v3/login ")
    assert b"\r\nx-forwarded-for: 203.0.113.9" in head
    assert b"\r\nuser-agent: element/1.11" in head


def test_get_login_lists_password_login(portals: PortalDeployment) -> None:
    for portal in (portals.portal, portals.portal_proxy):
        body = http("GET", portal.url("/_matrix/client/v3/login")).json()
        validate_login_flows(body)
        assert {"type": "m.login.password"} in body["flows"]


def _stored_assignments(portals: PortalDeployment) -> dict[str, str]:
    connection = postgres(portals.postgres_db)
    try:
        with connection.cursor() as cursor:
            # The module creates its table on first use: none yet, none stored.
            cursor.execute("SELECT to_regclass('login_redirect_assignments')")
            if cursor.fetchone()[0] is None:
                return {}
            cursor.execute("SELECT user_key, target FROM login_redirect_assignments")
            return dict(cursor.fetchall())
    finally:
        connection.close()


def _target_of(portals: PortalDeployment, response: HttpResponse) -> str:
    base_url = response.json()["well_known"]["m.homeserver"]["base_url"]
    return next(n for n, hs in portals.targets.items() if hs.base_url == base_url)


def test_pool_skips_failing_target_and_assignments_stick_in_postgres(
    portals: PortalDeployment,
) -> None:
    portal = portals.portal_proxy
    wait_for_log(portal, b"Target down is failing")
    placed = {}
    for localpart in POOL_USERS:
        final, _ = login_at(portal, password_body(by_user(localpart)))
        assert final.status == 200, (localpart, final)
        placed[localpart] = _target_of(portals, final)
    assert set(placed.values()) <= {"eng", "hist"}
    assert _stored_assignments(portals) == placed
    for localpart, target in placed.items():
        again, _ = login_at(portal, password_body(by_user(localpart)))
        assert_logged_in_on(again, portals.targets[target], localpart)


def test_wrong_password_of_a_new_user_places_nobody(
    portals: PortalDeployment,
) -> None:
    """Else anyone could pin a user who has not logged in yet to a target."""
    portal = portals.portal_proxy
    before = _stored_assignments(portals)
    final, _ = login_at(portal, password_body(by_user("not_yet_here"), "wrong"))
    assert final.status == 403, final
    assert _stored_assignments(portals) == before


def test_stopped_target_gives_502_and_nothing_is_lost(
    portals: PortalDeployment,
) -> None:
    portal = portals.portal_proxy
    body = password_body(by_user("@hugo:hist.test"))
    stored = _stored_assignments(portals)
    portals.hist.stop()
    try:
        answer, _ = login_at(portal, body)
        assert answer.status == 502, answer
        assert answer.json()["errcode"] == "M_UNKNOWN"
        assert "History" in answer.json()["error"]
    finally:
        portals.hist.restart()
    assert _stored_assignments(portals) == stored
    assert_logged_in_on(login_at(portal, body)[0], portals.hist, "hugo")


def test_assignment_survives_restart_and_pool_change(
    portals: PortalDeployment, workdir: Any
) -> None:
    portal = portals.portal
    first, _ = login_at(portal, password_body(by_user("paula")))
    target = _target_of(portals, first)
    directory = workdir / "directory.tsv"
    original = portal.module_config
    no_pool = portal_module_config(portals.targets, "redirect", directory, pool={})
    portal.set_module_config(no_pool)
    portal.restart()
    try:
        again, redirect = login_at(portal, password_body(by_user("paula")))
        assert redirect is not None
        assert_logged_in_on(again, portals.targets[target], "paula")
        unplaced, redirect = login_at(portal, password_body(by_user("newcomer")))
        assert redirect is None
        assert unplaced.status == 403
        assert unplaced.json() == {"errcode": "M_FORBIDDEN", "error": UNPLACED_MESSAGE}
    finally:
        portal.set_module_config(original)
        portal.restart()


def test_no_password_or_token_in_any_log(portals: PortalDeployment) -> None:
    login_at(portals.portal_proxy, password_body(by_user("@erin:eng.test")))
    for hs in portals.all:
        log = hs.log_path.read_bytes() + (hs.dir / "stderr.log").read_bytes()
        assert PASSWORD.encode() not in log, hs.name
        assert b"syt_" not in log, hs.name  # Synapse's access tokens
