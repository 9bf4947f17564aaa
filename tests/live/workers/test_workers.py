"""The portal on a worker deployment (see conftest): start-up, logins in both
modes and SSO through nginx, concurrent first use, and shared health.

The tests run in file order: the first one is the deployment's first use of
the module's tables, and the stopped target comes last.
"""

from __future__ import annotations

import collections
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from deploy.homeserver import Homeserver, HttpResponse, http, postgres
from tests.support.deployment import PASSWORD
from tests.support.portal_deployment import IDP_ID, PROXY_TIMEOUT
from tests.support.portal_sso import COMPLETE, REALM
from tests.support.sso_client import SsoClient
from tests.support.worker_deployment import (
    CLIENT,
    HEALTH_INTERVAL,
    MOVED_USERS,
    NEW_USERS,
    PORTAL_USER,
    WorkerDeployment,
)

pytestmark = pytest.mark.live

LOGIN = "/_matrix/client/v3/login"
SERIALIZATION_RETRY = "could not serialize access"
HEALTH_CHECK = re.compile(
    r'"GET /_matrix/client/versions HTTP/1.1" "synapse-login-redirect health check"'
)


def password_body(user: str, password: str = PASSWORD) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }


def login(hs: Homeserver | str, user: str, password: str = PASSWORD) -> HttpResponse:
    base = hs if isinstance(hs, str) else hs.base_url
    return http("POST", base + LOGIN, password_body(user, password))


def assert_logged_in_on(response: HttpResponse, hs: Homeserver, localpart: str) -> None:
    """A 200 login for ``localpart`` on ``hs``, which its ``well_known`` names."""
    assert response.status == 200, response
    body = response.json()
    assert body["user_id"] == f"@{localpart}:{hs.server_name}"
    assert body["well_known"]["m.homeserver"]["base_url"] == hs.base_url


def target_of(workers: WorkerDeployment, response: HttpResponse) -> str:
    """The target a portal's answer sends the client to: a 307 or a proxied login."""
    if response.status == 307:
        url = response.headers["location"]
    else:
        assert response.status == 200, response
        url = response.json()["well_known"]["m.homeserver"]["base_url"]
    return next(n for n, hs in workers.targets.items() if url.startswith(hs.base_url))


def stored_assignments(workers: WorkerDeployment) -> dict[str, str]:
    connection = postgres(workers.postgres_db)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT user_key, target FROM login_redirect_assignments")
            return dict(cursor.fetchall())
    finally:
        connection.close()


def logged(workers: WorkerDeployment, text: str) -> list[str]:
    return [
        f"{hs.name}: {line}"
        for hs in workers.homeservers
        for line in hs.log_path.read_text(errors="replace").splitlines()
        if text in line
    ]


def concurrently(calls: Sequence[Callable[[], HttpResponse]]) -> list[HttpResponse]:
    """Run the calls at once (each thread waits for all to be ready)."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], HttpResponse]) -> HttpResponse:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_first_requests_on_a_fresh_database(
    workers: WorkerDeployment,
) -> None:
    """Every table of the module is first used by all client processes at once."""
    form = urlencode({"redirectUrl": CLIENT, "department": "Engineering"}).encode()
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    calls: list[Callable[[], HttpResponse]] = []
    for i, hs in enumerate(workers.routers):
        for j in range(4):
            # a new pool user (assignments), a token (SSO tokens), the realm
            # page's form (SSO sessions)
            calls.append(partial(login, hs, f"first{i}{j}", "wrong"))
            token = {"type": "m.login.token", "token": f"unknown-{i}{j}"}
            calls.append(partial(http, "POST", hs.url(LOGIN), token))
            calls.append(
                partial(http, "POST", hs.url(REALM), headers=form_type, raw_body=form)
            )
    responses = concurrently(calls)
    statuses = collections.Counter(r.status for r in responses)
    assert not [r for r in responses if r.status >= 500], statuses
    assert logged(workers, " - ERROR - ") == []


def test_password_logins_in_both_modes_through_nginx(
    workers: WorkerDeployment,
) -> None:
    since = time.time()
    for _ in range(2):  # round-robin: one of each on each client worker
        proxied = login(workers.nginx.base_url, "@erin:eng.test")
        assert_logged_in_on(proxied, workers.eng, "erin")
        redirect = login(workers.nginx.base_url, "@hugo:hist.test")
        assert redirect.status == 307, redirect
        assert redirect.headers["location"] == workers.hist.url(LOGIN)
        followed = http("POST", redirect.headers["location"], password_body("hugo"))
        assert followed.status == 200, followed
    served = workers.nginx.upstreams_of(since, 4)
    assert collections.Counter(served) == {
        f"127.0.0.1:{workers.client1.port}": 2,
        f"127.0.0.1:{workers.client2.port}": 2,
    }


def test_sso_through_the_portal_with_steps_on_different_workers(
    workers: WorkerDeployment,
) -> None:
    since = time.time()
    nginx = workers.nginx
    client = SsoClient()
    start = nginx.url(
        f"{LOGIN}/sso/redirect/{IDP_ID}?" + urlencode({"redirectUrl": CLIENT})
    )
    to_realm = client.request("GET", start)
    assert to_realm.status == 302, to_realm
    page = client.request("GET", nginx.url(to_realm.headers["location"]))
    assert page.status == 200, page
    form = {"redirectUrl": CLIENT, "idp": IDP_ID, "department": "Engineering"}
    to_target = client.request("POST", nginx.url(REALM), form=form)
    assert to_target.status == 302, to_target

    def as_erin(url: str) -> str:
        authorize = workers.idp.issuer + "/authorize"
        return f"{url}&login_hint=erin" if url.startswith(authorize) else url

    completion = client.follow(
        to_target.headers["location"], until=nginx.url(COMPLETE), rewrite=as_erin
    )
    to_client = client.request("GET", completion)
    assert to_client.status == 302, to_client
    query = dict(parse_qsl(urlsplit(to_client.headers["location"]).query))
    assert query["homeserver"] == workers.eng.base_url
    token = {"type": "m.login.token", "token": query["loginToken"]}
    assert_logged_in_on(http("POST", nginx.url(LOGIN), token), workers.eng, "erin")
    # start, realm page, its form, completion, token login: each step on the
    # other client worker than the step before.
    served = nginx.upstreams_of(since, 5)
    assert len(served) == 5, served
    assert all(a != b for a, b in zip(served, served[1:])), served


def test_concurrent_first_logins_of_new_pool_users_on_both_workers(
    workers: WorkerDeployment,
) -> None:
    """Each new user logs in on client1 and client2 at once."""
    calls = [
        partial(login, hs, user)
        for user in NEW_USERS
        for hs in (workers.client1, workers.client2)
    ]
    responses = concurrently(calls)
    stored = stored_assignments(workers)
    for user, pair in zip(NEW_USERS, zip(responses[::2], responses[1::2])):
        first, second = (target_of(workers, r) for r in pair)
        assert first == second == stored[user], (user, pair)
    placed = collections.Counter(stored[user] for user in NEW_USERS)
    assert set(placed) == {"eng", "hist"}, placed
    assert logged(workers, SERIALIZATION_RETRY) == []
    assert logged(workers, " - ERROR - ") == []


def _health_checks(hs: Homeserver) -> list[float]:
    """When the target answered a health check (seconds since the epoch)."""
    times = []
    for line in hs.log_path.read_text(errors="replace").splitlines():
        if HEALTH_CHECK.search(line):
            stamp = time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
            times.append(time.mktime(stamp) + int(line[20:23]) / 1000)
    return times


def _health_row(workers: WorkerDeployment, target: str) -> Any:
    connection = postgres(workers.postgres_db)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT healthy FROM login_redirect_target_health WHERE target = %s",
                (target,),
            )
            row = cursor.fetchone()
            return None if row is None else row[0]
    finally:
        connection.close()


def test_one_health_check_per_interval_and_a_stopped_target_seen_by_all(
    workers: WorkerDeployment,
) -> None:
    time.sleep(max(0.0, workers.started_at + 4 * HEALTH_INTERVAL - time.time()))
    for name, hs in workers.targets.items():
        checks = _health_checks(hs)
        span = checks[-1] - checks[0]
        assert len(checks) <= span / HEALTH_INTERVAL + 2, (name, len(checks), span)
        assert len(checks) >= span / HEALTH_INTERVAL - 1, (name, len(checks), span)
    workers.eng.stop()
    stopped = time.monotonic()
    # A new user the pool puts on eng: a failed proxy hop stores nothing.
    first = login(workers.client1, MOVED_USERS[0])
    if first.status == 502:
        assert MOVED_USERS[0] not in stored_assignments(workers)
    else:
        assert target_of(workers, first) == "hist"
    while _health_row(workers, "eng") is not False:
        assert time.monotonic() - stopped < HEALTH_INTERVAL + PROXY_TIMEOUT + 1
        time.sleep(0.05)
    time.sleep(HEALTH_INTERVAL)
    for hs, user in zip(workers.routers, MOVED_USERS[1:]):
        answer = login(hs, user)
        assert target_of(workers, answer) == "hist", (hs.name, answer)
    assert target_of(workers, login(workers.client2, MOVED_USERS[0])) == "hist"
    assert {u: stored_assignments(workers)[u] for u in MOVED_USERS} == dict.fromkeys(
        MOVED_USERS, "hist"
    )


def test_each_worker_listener_serves_only_what_it_names(
    workers: WorkerDeployment,
) -> None:
    """The federation-only worker loads the module yet serves no client API;
    a client worker answers its own homeserver's logins with ``well_known``."""
    federation = workers.federation.base_url
    assert http("GET", federation + "/_matrix/federation/v1/version").status == 200
    for path in ("/_matrix/client/versions", LOGIN):
        answer = http("GET", federation + path)
        assert answer.status == 404, answer
        assert answer.json()["errcode"] == "M_UNRECOGNIZED"
    portal_user = f"@{PORTAL_USER}:{workers.main.config['server_name']}"
    assert login(federation, portal_user).status == 404
    for worker in (workers.client1, workers.client2):
        answer = login(worker, portal_user)
        assert answer.status == 200, answer
        public = workers.main.config["public_baseurl"].rstrip("/")
        assert answer.json()["well_known"]["m.homeserver"]["base_url"] == public


def test_every_process_started_and_stays_up(workers: WorkerDeployment) -> None:
    for hs in workers.portal:
        assert hs.process is not None and hs.process.poll() is None, hs.name
        assert http("GET", hs.url("/health")).status == 200, hs.name
