"""Single sign-on through the portal, page by page, over fakes: the tables on
sqlite, a router, Synapse's login tokens and external ids, the rate limiter."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from synapse.module_api.errors import Codes, ConfigError, SynapseError

from synapse_login_redirect._synapse import LimitExceededError, TokenLogin
from synapse_login_redirect.config.module import parse_config
from synapse_login_redirect.routing.engine import Decision, LoginSubject
from synapse_login_redirect.sso.flow import (
    ATTRIBUTE_WAIT_SECONDS,
    ATTRIBUTE_WAIT_STEPS,
    BOUNCE_PATH,
    COMPLETE_PATH,
    REALM_PATH,
    SsoPortal,
)
from synapse_login_redirect.sso.sessions import REFUSALS, UNKNOWN_SESSION
from synapse_login_redirect.store.idp_claims import IdpClaimTable
from synapse_login_redirect.store.login_tokens import LoginTokenTable
from synapse_login_redirect.store.sso_sessions import (
    REFUSED_OTHER_BROWSER,
    REFUSED_USED,
    SsoSessionTable,
)
from synapse_login_redirect.web.pages import PageError
from synapse_login_redirect.web.redirect_policy import RedirectUrlPolicy
from tests.support.fakes import (
    Clock,
    FakePages,
    FakeRequest,
    Shown,
    result_of,
    sqlite_tables,
)

PORTAL = "https://portal.example"
APP = "https://app.example/cb"
HIST = "https://matrix.hist.example"
TARGETS = {"hist": {"base_url": HIST}, "lab": {"base_url": "https://lab.example"}}
OWN_IDP = "oidc-corp"
SSO_REDIRECT = "/_matrix/client/v3/login/sso/redirect"
Browser = dict[bytes, bytes]


class SsoUnderTest:
    """The portal's SSO with the given ``portal.sso`` config over fakes."""

    def __init__(
        self,
        sso: dict[str, Any],
        whitelist: tuple[str, ...] = ("https://app.example/",),
    ) -> None:
        config = parse_config({"targets": TARGETS, "portal": {"sso": sso}})
        assert config.portal is not None and config.portal.sso is not None
        self.clock = Clock()
        tables = sqlite_tables(self.clock)
        self.tokens = LoginTokenTable(tables)
        self.claims = IdpClaimTable(tables)
        self.pages = FakePages()
        self.decision: Decision | None = Decision("hist", "pool", new_assignment=True)
        self.routed: list[LoginSubject] = []
        self.failing: set[str] = set()
        self.assigned: list[tuple[str, str]] = []
        self.counted: list[bool] = []
        self.retry_after_ms: int | None = None
        self.own_logins: dict[str, TokenLogin] = {}
        self.external_ids: dict[str, list[tuple[str, str]]] = {}
        self.slept = 0
        self.portal = SsoPortal(
            config.portal.sso,
            config.targets,
            self._route,
            self._is_failing,
            self.pages,
            RedirectUrlPolicy(),
            limit_address=self._limit,
            assign=self._assign,
            sessions=SsoSessionTable(tables),
            tokens=self.tokens,
            claims=self.claims,
            public_baseurl=PORTAL + "/",
            client_whitelist=whitelist,
            consume_login_token=self._consume,
            external_ids=self._external_ids,
            sleep=self._sleep,
        )

    async def _route(self, subject: LoginSubject) -> Decision | None:
        self.routed.append(subject)
        return self.decision

    async def _is_failing(self, name: str) -> bool:
        return name in self.failing

    async def _assign(self, user_key: str, target: str) -> None:
        self.assigned.append((user_key, target))

    async def _limit(self, address: str, *, update: bool = True) -> None:
        assert address == "10.0.0.1"
        self.counted.append(update)
        if self.retry_after_ms is not None:
            raise LimitExceededError("login", retry_after_ms=self.retry_after_ms)

    async def _consume(self, token: str) -> TokenLogin | None:
        return self.own_logins.pop(token, None)

    async def _external_ids(self, user_id: str) -> list[tuple[str, str]]:
        return self.external_ids.get(user_id, [])

    async def _sleep(self, seconds: float) -> None:
        assert seconds == ATTRIBUTE_WAIT_SECONDS
        self.slept += 1

    def _serve(self, request: FakeRequest, handler: Awaitable[None]) -> None:
        """Run a page's handler as its entry point does: an error it raises
        is shown as its page."""
        try:
            result_of(handler)
        except PageError as e:
            self.pages.show(request.as_synapse(), e)

    def start(self, browser: Browser, idp_id: str | None = None) -> FakeRequest:
        request = FakeRequest(args={"redirectUrl": APP}, cookies=browser)
        self._serve(request, self.portal.start(request.as_synapse(), idp_id))
        return request

    def choose(self, browser: Browser, **answer: str) -> FakeRequest:
        request = FakeRequest(
            REALM_PATH.encode(), args={"redirectUrl": APP, **answer}, cookies=browser
        )
        self._serve(request, self.portal.choose_realm(request.as_synapse()))
        return request

    def complete(self, browser: Browser, session_id: str) -> FakeRequest:
        args = {"session": session_id, "loginToken": "target-token"}
        request = FakeRequest(COMPLETE_PATH.encode(), args=args, cookies=browser)
        self._serve(request, self.portal.complete(request.as_synapse()))
        return request

    def bounce(self, browser: Browser, session_id: str) -> FakeRequest:
        args = {"session": session_id, "loginToken": "portal-token"}
        request = FakeRequest(BOUNCE_PATH.encode(), args=args, cookies=browser)
        self._serve(request, self.portal.bounce(request.as_synapse()))
        return request

    def target_of(self, token: str) -> str | None:
        return result_of(self.tokens.target_of_token(token))


def _query(url: str | None) -> dict[str, str]:
    assert url is not None
    return {k: v for k, [v] in parse_qs(urlsplit(url).query).items()}


def _to_target(request: FakeRequest, sso_path: str) -> str:
    """The session id of a redirect to a target's SSO; checks the rest."""
    assert request.redirected_to is not None
    assert request.redirected_to.startswith(f"{HIST}{sso_path}?")
    completion = _query(request.redirected_to)["redirectUrl"]
    assert completion.startswith(f"{PORTAL}{COMPLETE_PATH}?")
    return _query(completion)["session"]


def test_a_start_goes_to_the_realm_page_uncounted() -> None:
    sso = SsoUnderTest({"departments": {"History": "hist"}})
    request = sso.start({}, "oidc-x")
    assert request.redirected_to == f"{REALM_PATH}?" + urlencode(
        {"redirectUrl": APP, "idp": "oidc-x"}
    )
    assert sso.counted == [False]


def test_a_start_without_a_redirect_url_is_refused_as_synapse_would() -> None:
    sso = SsoUnderTest({})
    with pytest.raises(SynapseError) as info:
        result_of(sso.portal.start(FakeRequest().as_synapse(), None))
    assert (info.value.code, info.value.errcode) == (400, Codes.MISSING_PARAM)


def test_a_department_signs_in_at_its_target_once() -> None:
    sso = SsoUnderTest({"departments": {"History": "hist"}})
    browser: Browser = {}
    session_id = _to_target(
        sso.choose(browser, department="History"),
        SSO_REDIRECT,
    )
    assert sso.counted == [True]
    assert sso.routed == []  # departments are not routed
    done = sso.complete(browser, session_id)
    assert done.redirected_to == f"{APP}?" + urlencode(
        {"homeserver": HIST, "loginToken": "target-token"}
    )
    assert sso.target_of("target-token") == "hist"
    assert sso.assigned == []
    assert sso.complete(browser, session_id).redirected_to is None
    assert sso.pages.shown[-1] == Shown("error", 403, REFUSALS[REFUSED_USED])


def test_a_new_pool_user_is_assigned_once_the_sign_in_completes() -> None:
    sso = SsoUnderTest({})
    browser: Browser = {}
    request = sso.choose(browser, user="carol@hist.example", idp="oidc-t")
    assert sso.routed == [LoginSubject(email="carol@hist.example")]
    session_id = _to_target(request, f"{SSO_REDIRECT}/oidc-t")
    assert sso.assigned == []
    sso.complete(browser, session_id)
    assert sso.assigned == [("carol@hist.example", "hist")]


def test_an_unlisted_client_gets_the_confirmation_page() -> None:
    sso = SsoUnderTest({"departments": {"History": "hist"}}, whitelist=())
    browser: Browser = {}
    session_id = _to_target(sso.choose(browser, department="History"), SSO_REDIRECT)
    assert sso.complete(browser, session_id).redirected_to is None
    [confirm] = sso.pages.shown
    assert confirm == Shown(
        "confirm",
        200,
        f"{APP}?" + urlencode({"homeserver": HIST, "loginToken": "target-token"}),
    )


def test_another_browser_gets_no_token() -> None:
    sso = SsoUnderTest({"departments": {"History": "hist"}})
    session_id = _to_target(sso.choose({}, department="History"), SSO_REDIRECT)
    assert sso.complete({}, session_id).redirected_to is None
    assert sso.pages.shown[-1] == Shown("error", 403, REFUSALS[REFUSED_OTHER_BROWSER])
    assert sso.target_of("target-token") is None


def test_a_failing_target_starts_no_sign_in() -> None:
    sso = SsoUnderTest({"departments": {"History": "hist"}})
    sso.failing = {"hist"}
    browser: Browser = {}
    request = sso.choose(browser, department="History")
    assert request.redirected_to is None
    assert browser == {}
    assert (sso.pages.shown[-1].page, sso.pages.shown[-1].code) == ("error", 503)


def test_a_user_nobody_places_gets_the_realm_page_again() -> None:
    sso = SsoUnderTest({})
    sso.decision = None
    browser: Browser = {}
    assert sso.choose(browser, user="@ivy:nowhere.example").redirected_to is None
    assert sso.pages.shown[-1].page == "realm"
    assert sso.pages.shown[-1].code == 403
    assert browser == {}


def test_over_the_rate_limit_the_browser_is_told_when_to_try_again() -> None:
    sso = SsoUnderTest({"departments": {"History": "hist"}})
    sso.retry_after_ms = 150_500
    browser: Browser = {}
    request = sso.choose(browser, department="History")
    assert request.redirected_to is None
    assert browser == {}
    assert request.responseHeaders.getRawHeaders(b"Retry-After") == [b"151"]
    refusal = sso.pages.shown[-1]
    assert (refusal.code, "try again in 2 minutes" in refusal.text) == (429, True)


def _own_idp_sso() -> SsoUnderTest:
    return SsoUnderTest(
        {"portal_idps": {OWN_IDP: "oidc-t"}},
        whitelist=("https://app.example/", f"{PORTAL}{BOUNCE_PATH}"),
    )


def _bounce_session(sso: SsoUnderTest, browser: Browser) -> str:
    """Start at the portal's own IdP: the session id the bounce URL carries."""
    request = sso.start(browser, OWN_IDP)
    assert sso.counted == [True]
    assert request.redirected_to is not None
    own_sso = f"{SSO_REDIRECT}/{OWN_IDP}?"
    assert request.redirected_to.startswith(own_sso)
    bounce = _query(request.redirected_to)["redirectUrl"]
    assert bounce.startswith(f"{PORTAL}{BOUNCE_PATH}?")
    sso.own_logins["portal-token"] = TokenLogin("@ivy:portal.example", OWN_IDP)
    sso.external_ids["@ivy:portal.example"] = [(OWN_IDP, "ivy-7")]
    return _query(bounce)["session"]


def test_the_portals_own_idp_routes_on_the_claims_it_gave() -> None:
    sso = _own_idp_sso()
    browser: Browser = {}
    session_id = _bounce_session(sso, browser)
    claims = {"department": ["History"], "email": ["ivy@hist.example"]}
    result_of(sso.claims.remember_claims(OWN_IDP, "ivy-7", claims))
    request = sso.bounce(browser, session_id)
    assert sso.routed == [
        LoginSubject(localpart="ivy", email="ivy@hist.example", attributes=claims)
    ]
    assert _to_target(request, f"{SSO_REDIRECT}/oidc-t") == (session_id)
    assert sso.slept == 0
    sso.complete(browser, session_id)
    assert sso.target_of("target-token") == "hist"
    assert sso.assigned == [("ivy", "hist")]


def test_a_bounce_without_claims_waits_a_while_then_fails() -> None:
    sso = _own_idp_sso()
    browser: Browser = {}
    session_id = _bounce_session(sso, browser)
    request = sso.bounce(browser, session_id)
    assert request.redirected_to is None
    assert sso.slept == ATTRIBUTE_WAIT_STEPS
    assert sso.routed == []
    assert sso.pages.shown[-1] == Shown("error", 403, UNKNOWN_SESSION)


def test_a_bounce_with_a_sign_in_at_another_idp_fails() -> None:
    sso = _own_idp_sso()
    browser: Browser = {}
    session_id = _bounce_session(sso, browser)
    sso.own_logins["portal-token"] = TokenLogin("@ivy:portal.example", "oidc-other")
    sso.external_ids["@ivy:portal.example"] = [("oidc-other", "ivy-7")]
    result_of(sso.claims.remember_claims("oidc-other", "ivy-7", {"x": ["y"]}))
    assert sso.bounce(browser, session_id).redirected_to is None
    assert sso.routed == []
    assert sso.pages.shown[-1] == Shown("error", 403, UNKNOWN_SESSION)


def test_own_idps_need_the_bounce_url_in_the_client_whitelist() -> None:
    with pytest.raises(ConfigError) as info:
        SsoUnderTest({"portal_idps": {OWN_IDP: "oidc-t"}})
    assert info.value.path == ("portal", "sso", "portal_idps")
