"""The portal's anonymous sign-in pages are bounded (issue 11, item 4).

Size caps on every field and request body (413 / 400 pages, nothing stored),
Synapse's ``rc_login.address`` limit on realm submissions and SSO starts
(429 pages with ``Retry-After``), a cap on sign-ins in progress, expired
sessions and token records purged, and pool assignments stored only when a
sign-in completes.

``portal-bounded`` (sqlite) is a dedicated SSO portal with a small address
limit and session cap; the test of completed sign-ins uses ``portal-proxy``,
whose completion URL the targets trust. Distinct ``X-Forwarded-For``
addresses keep the tests' rate-limit buckets apart.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from deploy.homeserver import (
    Homeserver,
    HttpResponse,
    address_limited,
    http,
    postgres,
    running,
)
from synapse_login_redirect.gateway.limits import (
    FIELD_LIMITS,
    MAX_BODY_BYTES,
    MAX_IDP_ID_BYTES,
    MAX_REDIRECT_URL_BYTES,
)
from synapse_login_redirect.store.schema import SCHEMA_VERSION, SCHEMA_VERSION_TABLE
from tests.support.logs import wait_for_log
from tests.support.portal_deployment import (
    IDP_ID,
    PORTAL_IDP_ID,
    PortalDeployment,
    portal_module_config,
)
from tests.support.sso_client import SsoClient

pytestmark = pytest.mark.live

PAGES = "/_synapse/client/login_redirect"
REALM = f"{PAGES}/realm"
COMPLETE = f"{PAGES}/complete"
SSO = "/_matrix/client/v3/login/sso/redirect"
CLIENT = "http://client.test/cb"
BURST = 4
MAX_SESSIONS = 8
FORM = "application/x-www-form-urlencoded"
# A session row at its largest: ids, hashes, target and integers, plus the
# capped idp id and redirectUrl.
MAX_SESSION_ROW_BYTES = 200 + MAX_IDP_ID_BYTES + MAX_REDIRECT_URL_BYTES

_addresses = (f"203.0.113.{n}" for n in itertools.count(1))


def longest_client_url() -> str:
    base = CLIENT + "?state="
    return base + "s" * (MAX_REDIRECT_URL_BYTES - len(base))


@pytest.fixture(scope="module")
def bounded(portals: PortalDeployment, workdir: Path) -> Iterator[Homeserver]:
    """An SSO portal allowing BURST logins per address, then one a thousand
    seconds, and MAX_SESSIONS sign-ins in progress."""
    directory = workdir / "bounded-directory.tsv"
    directory.write_text("")
    hs = Homeserver(
        "portal-bounded",
        workdir,
        module_config=portal_module_config(
            portals.targets,
            "redirect",
            directory,
            pool={"eng": 1, "hist": 1},
            sso={
                "departments": {"Engineering": "eng", "History": "hist"},
                "max_sessions": MAX_SESSIONS,
            },
        ),
        extra_config=address_limited(BURST),
    )
    with running([hs]):
        yield hs


def post_realm(
    hs: Homeserver, form: dict[str, str] | bytes, address: str
) -> HttpResponse:
    body = form if isinstance(form, bytes) else urlencode(form).encode()
    headers = {"Content-Type": FORM, "X-Forwarded-For": address}
    return http("POST", hs.url(REALM), raw_body=body, headers=headers)


def get(hs: Homeserver, path: str, address: str) -> HttpResponse:
    return http("GET", hs.url(path), headers={"X-Forwarded-For": address})


def _schema_version(connection: sqlite3.Connection) -> int:
    try:
        row = connection.execute(
            f"SELECT version FROM {SCHEMA_VERSION_TABLE}"
        ).fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0
    return 0 if row is None else int(row[0])


def tables(hs: Homeserver) -> dict[str, tuple[int, int]]:
    """Each module table: (rows, bytes in its columns), once the module's
    start-up schema step is done."""
    connection = sqlite3.connect(f"file:{hs.dir / 'homeserver.db'}?mode=ro", uri=True)
    try:
        deadline = time.monotonic() + 10
        while _schema_version(connection) < SCHEMA_VERSION:
            assert time.monotonic() < deadline, "the module's tables never got ready"
            time.sleep(0.05)
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'table' AND name LIKE 'login_redirect_%'"
            )
        ]
        sizes = {}
        for name in names:
            columns = [
                row[1] for row in connection.execute(f"PRAGMA table_info({name})")
            ]
            total = " + ".join(
                f"COALESCE(LENGTH(CAST({c} AS BLOB)), 0)" for c in columns
            )
            rows, size = connection.execute(
                f"SELECT COUNT(*), COALESCE(SUM({total}), 0) FROM {name}"
            ).fetchone()
            sizes[name] = (rows, size)
        return sizes
    finally:
        connection.close()


def expire_sessions(hs: Homeserver) -> None:
    connection = sqlite3.connect(hs.dir / "homeserver.db", timeout=10)
    try:
        with connection:
            connection.execute("UPDATE login_redirect_sso_sessions SET expires_ts = 0")
    finally:
        connection.close()


def assert_page(answer: HttpResponse, status: int) -> None:
    assert answer.status == status, answer
    assert answer.headers["content-type"].startswith("text/html"), answer
    assert "location" not in answer.headers


@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, 20 * 1024 * 1024])
def test_oversized_realm_form_gets_413_and_stores_nothing(
    bounded: Homeserver, size: int
) -> None:
    """The original attack: a huge redirectUrl was stored whole."""
    head = urlencode({"department": "Engineering", "redirectUrl": CLIENT + "?x="})
    body = head.encode() + b"x" * (size - len(head))
    before = tables(bounded)
    answer = post_realm(bounded, body, next(_addresses))
    assert_page(answer, 413)
    assert b"too large" in answer.body
    assert tables(bounded) == before


def _too_long(field: str) -> str:
    return "x" * (FIELD_LIMITS[field] + 1)


LONG_URL = CLIENT + "?state=" + "s" * MAX_REDIRECT_URL_BYTES


@pytest.mark.parametrize(
    ("method", "path", "form", "field"),
    [
        (
            "POST",
            REALM,
            {"redirectUrl": LONG_URL, "department": "History"},
            "redirectUrl",
        ),
        (
            "POST",
            REALM,
            {"redirectUrl": CLIENT, "user": "@" + _too_long("user")},
            "user",
        ),
        (
            "POST",
            REALM,
            {"redirectUrl": CLIENT, "department": _too_long("department")},
            "department",
        ),
        (
            "POST",
            REALM,
            {"redirectUrl": CLIENT, "department": "History", "idp": _too_long("idp")},
            "idp",
        ),
        (
            "GET",
            f"{REALM}?" + urlencode({"redirectUrl": LONG_URL}),
            None,
            "redirectUrl",
        ),
        (
            "GET",
            f"{REALM}?" + urlencode({"redirectUrl": CLIENT, "idp": _too_long("idp")}),
            None,
            "idp",
        ),
        ("GET", f"{SSO}?" + urlencode({"redirectUrl": LONG_URL}), None, "redirectUrl"),
        (
            "GET",
            f"{SSO}/{_too_long('idp')}?" + urlencode({"redirectUrl": CLIENT}),
            None,
            "idp",
        ),
        (
            "GET",
            f"{COMPLETE}?"
            + urlencode({"session": _too_long("session"), "loginToken": "t"}),
            None,
            "session",
        ),
        (
            "GET",
            f"{COMPLETE}?"
            + urlencode({"session": "s", "loginToken": _too_long("loginToken")}),
            None,
            "loginToken",
        ),
        (
            "GET",
            f"{PAGES}/bounce?"
            + urlencode({"session": _too_long("session"), "loginToken": "t"}),
            None,
            "session",
        ),
    ],
)
def test_overlong_fields_get_400_naming_them_and_store_nothing(
    bounded: Homeserver,
    method: str,
    path: str,
    form: dict[str, str] | None,
    field: str,
) -> None:
    before = tables(bounded)
    address = next(_addresses)
    if form is None:
        answer = get(bounded, path, address)
    else:
        answer = post_realm(bounded, form, address)
    assert_page(answer, 400)
    message = f"{field} is longer than {FIELD_LIMITS[field]} bytes"
    assert message.encode() in answer.body, answer
    assert tables(bounded) == before


def test_submissions_and_sso_starts_over_the_address_limit_get_429(
    bounded: Homeserver,
) -> None:
    address = next(_addresses)
    form = {"redirectUrl": CLIENT, "department": "Engineering"}
    answers = [post_realm(bounded, form, address) for _ in range(BURST)]
    assert [a.status for a in answers] == [302] * BURST, answers
    before = tables(bounded)
    for answer in (
        post_realm(bounded, form, address),
        get(bounded, f"{SSO}?" + urlencode({"redirectUrl": CLIENT}), address),
        get(bounded, f"{SSO}/{IDP_ID}?" + urlencode({"redirectUrl": CLIENT}), address),
    ):
        assert_page(answer, 429)
        assert int(answer.headers["retry-after"]) > 0, answer
        assert b"Too many sign-in attempts" in answer.body
    assert tables(bounded) == before
    # Another address is not limited.
    assert post_realm(bounded, form, next(_addresses)).status == 302


def test_one_ipv6_client_counts_once_whatever_its_address(
    bounded: Homeserver,
) -> None:
    """A client holds a whole /64: a new address per request gains nothing."""
    expire_sessions(bounded)  # room under the session cap
    form = {"redirectUrl": CLIENT, "department": "Engineering"}
    network = "2001:db8:77:1"
    answers = [
        post_realm(bounded, form, f"{network}:{n:x}::1") for n in range(BURST + 1)
    ]
    assert [a.status for a in answers[:BURST]] == [302] * BURST, answers
    assert_page(answers[-1], 429)
    assert post_realm(bounded, form, "2001:db8:77:2::1").status == 302


def test_flood_stays_within_the_caps_and_stores_no_assignment(
    bounded: Homeserver,
) -> None:
    """From many addresses: at most MAX_SESSIONS sign-ins in progress, each
    row within the field caps, and no pool assignment for sign-ins that never
    complete. Expired sessions are purged."""
    expire_sessions(bounded)
    flood = [
        post_realm(
            bounded,
            {
                "redirectUrl": longest_client_url(),
                "idp": "i" * MAX_IDP_ID_BYTES,
                "user": f"flood{n}",
            },
            next(_addresses),
        )
        for n in range(MAX_SESSIONS + 5)
    ]
    assert [a.status for a in flood] == [302] * MAX_SESSIONS + [503] * 5, flood
    for answer in flood[MAX_SESSIONS:]:
        assert_page(answer, 503)
        assert b"Too many sign-ins are in progress" in answer.body
    sizes = tables(bounded)
    rows, size = sizes["login_redirect_sso_sessions"]
    assert rows == MAX_SESSIONS
    assert size <= MAX_SESSIONS * MAX_SESSION_ROW_BYTES
    assert sizes.get("login_redirect_assignments", (0, 0)) == (0, 0)
    expire_sessions(bounded)
    form = {"redirectUrl": CLIENT, "department": "History"}
    assert post_realm(bounded, form, next(_addresses)).status == 302
    assert tables(bounded)["login_redirect_sso_sessions"][0] == 1


def _assignment(portals: PortalDeployment, user_key: str) -> str | None:
    connection = postgres(portals.postgres_db)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('login_redirect_assignments')")
            if cursor.fetchone()[0] is None:
                return None
            cursor.execute(
                "SELECT target FROM login_redirect_assignments WHERE user_key = %s",
                (user_key,),
            )
            row = cursor.fetchone()
            return None if row is None else str(row[0])
    finally:
        connection.close()


def _forget_assignment(portals: PortalDeployment, user_key: str) -> None:
    """Leave portal-proxy's table as the other tests expect it."""
    connection = postgres(portals.postgres_db)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('login_redirect_assignments')")
            if cursor.fetchone()[0] is None:
                return
            cursor.execute(
                "DELETE FROM login_redirect_assignments WHERE user_key = %s",
                (user_key,),
            )
    finally:
        connection.close()


def _expire_tokens(portals: PortalDeployment) -> None:
    connection = postgres(portals.postgres_db)
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE login_redirect_sso_tokens SET expires_ts = 0")
    finally:
        connection.close()


def _expired_tokens(portals: PortalDeployment) -> int:
    connection = postgres(portals.postgres_db)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM login_redirect_sso_tokens WHERE expires_ts = 0"
            )
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


def _hint(user: str) -> Callable[[str], str]:
    def rewrite(url: str) -> str:
        return f"{url}&login_hint={user}" if "/authorize?" in url else url

    return rewrite


@pytest.mark.parametrize("via", ["realm page", "portal idp"])
def test_completed_sign_in_stores_the_pool_assignment(
    portals: PortalDeployment, via: str
) -> None:
    """A new pool user's assignment is stored at completion, not before."""
    portal = portals.portal_proxy
    wait_for_log(portal, b"Target down is failing")
    user = "walt" if via == "realm page" else "wanda"
    portals.idp.users[user] = {}
    client = SsoClient()
    start = f"{SSO}/{PORTAL_IDP_ID if via == 'portal idp' else IDP_ID}?"
    start += urlencode({"redirectUrl": CLIENT})
    try:
        if via == "realm page":
            form = {"redirectUrl": CLIENT, "idp": IDP_ID, "user": user}
            to_target = client.request("POST", portal.url(REALM), form=form)
        else:
            bounce = client.follow(
                portal.url(start),
                until=portal.url(f"{PAGES}/bounce"),
                rewrite=_hint(user),
            )
            to_target = client.request("GET", bounce)
        assert to_target.status == 302, to_target
        location = to_target.headers["location"]
        target = next(
            name
            for name, hs in portals.targets.items()
            if location.startswith(hs.base_url + "/")
        )
        assert _assignment(portals, user) is None
        completion = client.follow(
            location, until=portal.url(COMPLETE), rewrite=_hint(user)
        )
        assert _assignment(portals, user) is None
        _expire_tokens(portals)
        final = client.request("GET", completion)
        assert final.status == 302, final
        assert urlsplit(final.headers["location"]).netloc == "client.test"
        assert _assignment(portals, user) == target
        assert _expired_tokens(portals) == 0  # purged as the new one was stored
    finally:
        _forget_assignment(portals, user)
