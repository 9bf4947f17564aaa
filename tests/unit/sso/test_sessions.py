"""One-time sign-in sessions bound to a browser, on sqlite with a fake clock:
used once, in the browser that started them, before they expire, and at most
``max_sessions`` at once."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from synapse_login_redirect.sso.sessions import (
    COOKIE_PREFIX,
    PAGES_PATH,
    REFUSALS,
    UNKNOWN_SESSION,
    BrowserSessions,
)
from synapse_login_redirect.store.sso_sessions import (
    REFUSED_EXPIRED,
    REFUSED_OTHER_BROWSER,
    REFUSED_USED,
    Completion,
    SsoSessionTable,
)
from synapse_login_redirect.web.pages import PageError
from tests.support.fakes import (
    Clock,
    FakeRequest,
    Shown,
    result_of,
    sqlite_tables,
)

LIFETIME = 600.0
APP = "https://app.example/cb"
Browser = dict[bytes, bytes]
T = TypeVar("T")


class Sessions:
    """Browser sessions over their table, on a clock the test moves."""

    def __init__(self, max_sessions: int = 10, secure_cookie: bool = True) -> None:
        self.clock = Clock()
        self.table = SsoSessionTable(sqlite_tables(self.clock))
        self.shown: list[Shown] = []
        self.sessions = BrowserSessions(
            self.table, LIFETIME, max_sessions, secure_cookie
        )

    def _refusing(self, awaitable: Awaitable[T]) -> T | None:
        """What ``awaitable`` gives, or None with the error page it raised."""
        try:
            return result_of(awaitable)
        except PageError as e:
            self.shown.append(Shown("error", e.code, e.message))
            return None

    def start(self, browser: Browser, target: str | None = "hist") -> str | None:
        request = FakeRequest(PAGES_PATH.encode() + b"realm", cookies=browser)
        return self._refusing(
            self.sessions.start(request.as_synapse(), target, "oidc", APP, "carol")
        )

    def come_back(
        self, browser: Browser, args: dict[str, str]
    ) -> tuple[Completion, str, str] | None:
        request = FakeRequest(
            PAGES_PATH.encode() + b"complete", args=args, cookies=browser
        )
        return self._refusing(
            self.sessions.returned(request.as_synapse(), self.table.complete_session)
        )

    def complete(
        self, browser: Browser, session_id: str
    ) -> tuple[Completion, str, str] | None:
        return self.come_back(browser, {"session": session_id, "loginToken": "tok"})

    def refused_with(self) -> Shown:
        return self.shown[-1]


def test_a_session_completes_once_in_the_browser_that_started_it() -> None:
    sessions = Sessions()
    browser: Browser = {}
    session_id = sessions.start(browser)
    assert session_id is not None
    assert sessions.complete(browser, session_id) == (
        Completion(
            target="hist",
            idp_id="oidc",
            client_redirect_url=APP,
            expires_ts=sessions.clock.now + int(LIFETIME * 1000),
            assign_user_key="carol",
        ),
        session_id,
        "tok",
    )
    assert sessions.shown == []
    assert sessions.complete(browser, session_id) is None
    assert sessions.refused_with() == Shown("error", 403, REFUSALS[REFUSED_USED])


def test_the_cookie_holds_a_nonce_for_the_sso_pages_only() -> None:
    sessions = Sessions(secure_cookie=False)
    browser: Browser = {}
    request = FakeRequest(cookies=browser)
    session_id = result_of(
        sessions.sessions.start(request.as_synapse(), "hist", None, APP)
    )
    name = f"{COOKIE_PREFIX}{session_id}"
    assert browser[name.encode()] not in (b"", (session_id or "").encode())
    assert request.cookie_attributes[name] == {
        "path": PAGES_PATH,
        "max_age": "600",
        "secure": False,
        "httpOnly": True,
        "sameSite": "lax",
    }
    sessions.sessions.forget(request.as_synapse(), session_id or "")
    assert browser[name.encode()] == b""
    assert request.cookie_attributes[name]["max_age"] == "0"


def test_another_browser_cannot_complete_a_session() -> None:
    sessions = Sessions()
    browser: Browser = {}
    session_id = sessions.start(browser)
    assert session_id is not None
    forged = dict.fromkeys(browser, b"guessed")
    for other in ({}, forged):
        assert sessions.complete(other, session_id) is None
        assert sessions.refused_with() == Shown(
            "error", 403, REFUSALS[REFUSED_OTHER_BROWSER]
        )
    assert sessions.complete(browser, session_id) is not None


def test_a_session_expires() -> None:
    sessions = Sessions()
    browser: Browser = {}
    session_id = sessions.start(browser)
    assert session_id is not None
    sessions.clock.now += int(LIFETIME * 1000) + 1
    assert sessions.complete(browser, session_id) is None
    assert sessions.refused_with() == Shown("error", 403, REFUSALS[REFUSED_EXPIRED])


def test_at_most_max_sessions_are_in_progress() -> None:
    sessions = Sessions(max_sessions=2)
    browser: Browser = {}
    assert sessions.start(browser) is not None
    assert sessions.start(browser) is not None
    assert sessions.start(browser) is None
    refusal = sessions.refused_with()
    assert (refusal.page, refusal.code) == ("error", 503)
    assert "Too many sign-ins are in progress" in refusal.text
    assert len(browser) == 2
    sessions.clock.now += int(LIFETIME * 1000) + 1  # expired ones make room
    assert sessions.start(browser) is not None


def test_a_return_without_session_or_token_or_with_an_unknown_session() -> None:
    sessions = Sessions()
    browser: Browser = {}
    session_id = sessions.start(browser)
    assert session_id is not None
    for args, code in (
        ({"session": session_id}, 400),
        ({"loginToken": "tok"}, 400),
        ({"session": "nonesuch", "loginToken": "tok"}, 403),
    ):
        assert sessions.come_back(browser, args) is None
        assert sessions.refused_with() == Shown("error", code, UNKNOWN_SESSION)


def test_a_session_waiting_for_its_target_completes_only_once_it_has_one() -> None:
    sessions = Sessions()
    browser: Browser = {}
    session_id = sessions.start(browser, target=None)
    assert session_id is not None
    nonce = browser[f"{COOKIE_PREFIX}{session_id}".encode()].decode()
    pending = result_of(sessions.table.pending_session(session_id, nonce))
    assert (pending.refusal, pending.idp_id, pending.target) == (None, "oidc", None)
    assert sessions.complete(browser, session_id) is None
    assert sessions.refused_with() == Shown("error", 403, UNKNOWN_SESSION)
    assert result_of(sessions.table.set_target(session_id, "lab", "dan"))
    assert not result_of(sessions.table.set_target(session_id, "hist", None))
    again = result_of(sessions.table.pending_session(session_id, nonce))
    assert again.refusal == REFUSED_USED  # a second bounce
    completed = sessions.complete(browser, session_id)
    assert completed is not None
    assert (completed[0].target, completed[0].assign_user_key) == ("lab", "dan")
