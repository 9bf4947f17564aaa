"""A web client's fetch() in a real browser follows the portal's 307 (CORS included).

Headless Debian chromium loads a page from another origin; the page posts the
login to the portal as JSON, which the Fetch standard makes a preflighted
request: a failed preflight at the portal or at the target, or a 307 without
CORS headers, would make fetch() reject. The page then calls whoami at the
advertised homeserver. (Synapse does not log OPTIONS requests, so the
preflights themselves are not counted.)
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.support.deployment import PASSWORD
from tests.support.portal_deployment import (
    IDP_ID,
    PORTAL_IDP_ID,
    SAML_IDP_ID,
    PortalDeployment,
)

pytestmark = pytest.mark.live

CHROMIUM = "/usr/bin/chromium"

CLIENT_PAGE = b"""<!doctype html>
<title>client</title>
<script>
async function login(portal, body) {
  const login = await fetch(portal + "/_matrix/client/v3/login", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body),
  });
  const answer = await login.json();
  const homeserver = answer.well_known["m.homeserver"].base_url;
  const whoami = await fetch(homeserver + "/_matrix/client/v3/account/whoami", {
    headers: {"Authorization": "Bearer " + answer.access_token},
  });
  return {
    status: login.status,
    redirected: login.redirected,
    finalUrl: login.url,
    homeserver: homeserver,
    whoami: (await whoami.json()).user_id,
  };
}

// One link per SSO identity provider of GET /login, built as Element does.
async function showSsoButtons(portal) {
  const flows = (await (await fetch(portal + "/_matrix/client/v3/login")).json()).flows;
  const sso = flows.find((flow) => flow.type === "m.login.sso");
  const back = encodeURIComponent(location.origin + "/cb");
  for (const idp of sso.identity_providers) {
    const link = document.createElement("a");
    link.href = portal + "/_matrix/client/v3/login/sso/redirect/" +
      encodeURIComponent(idp.id) + "?redirectUrl=" + back;
    link.textContent = idp.name;
    document.body.appendChild(link);
  }
}

// Back from single sign-on: log in with the token at the portal.
async function finishSso(portal) {
  const query = new URLSearchParams(location.search);
  const login = await fetch(portal + "/_matrix/client/v3/login", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({type: "m.login.token", token: query.get("loginToken")}),
  });
  const answer = await login.json();
  const homeserver = answer.well_known["m.homeserver"].base_url;
  const whoami = await fetch(homeserver + "/_matrix/client/v3/account/whoami", {
    headers: {"Authorization": "Bearer " + answer.access_token},
  });
  return {
    msc1731Homeserver: query.get("homeserver"),
    homeserver: homeserver,
    whoami: (await whoami.json()).user_id,
  };
}
</script>
"""


class _ClientPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(CLIENT_PAGE)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def client_origin() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ClientPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_browser_fetch_follows_the_redirect_to_the_target(
    portals: PortalDeployment, client_origin: str
) -> None:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "@hugo:hist.test"},
        "password": PASSWORD,
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.goto(client_origin + "/")
            result = page.evaluate(
                "([portal, body]) => login(portal, body)",
                [portals.portal.base_url, body],
            )
        finally:
            browser.close()
    assert result == {
        "status": 200,
        "redirected": True,
        "finalUrl": portals.hist.url("/_matrix/client/v3/login"),
        "homeserver": portals.hist.base_url,
        "whoami": "@hugo:hist.test",
    }, json.dumps(result)


@pytest.mark.parametrize("define", ["window.onLogin", "matrixLogin.onLogin"])
def test_fallback_login_page_passes_the_homeserver_to_onlogin(
    portals: PortalDeployment, define: str
) -> None:
    """MSC1731: Synapse's fallback page, at the portal, calls onLogin(response, hs)."""
    capture = "(response, homeserver) => { window.__login = {user: response.user_id, homeserver: homeserver}; }"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.goto(portals.portal.url("/_matrix/static/client/login/"))
            page.evaluate(f"() => {{ {define} = {capture}; }}")
            page.fill("#user_id", "@erin:eng.test")
            page.fill("#password", PASSWORD)
            page.click("#password_flow input[type=submit]")
            page.wait_for_function("window.__login !== undefined", timeout=15000)
            result = page.evaluate("window.__login")
        finally:
            browser.close()
    assert result == {"user": "@erin:eng.test", "homeserver": portals.eng.base_url}


def test_sso_in_the_browser_from_a_client_page(
    portals: PortalDeployment, client_origin: str
) -> None:
    """The whole SSO flow in chromium: realm page, IdP form, back to the client."""
    portal = portals.portal_proxy.base_url
    start = (
        f"{portal}/_matrix/client/v3/login/sso/redirect/{IDP_ID}"
        f"?redirectUrl={client_origin}/cb"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.goto(start)
            page.select_option("#department", "History")
            page.click("#continue")
            page.fill("#username", "hugo")
            page.click("#login")
            page.wait_for_url(f"{client_origin}/cb?*", timeout=15000)
            landed = page.url
            result = page.evaluate("(portal) => finishSso(portal)", portal)
        finally:
            browser.close()
    assert landed.startswith(f"{client_origin}/cb?homeserver=")
    assert result == {
        "msc1731Homeserver": portals.hist.base_url,
        "homeserver": portals.hist.base_url,
        "whoami": "@hugo:hist.test",
    }


def test_sso_from_the_realm_button_of_get_login(
    portals: PortalDeployment, client_origin: str
) -> None:
    """A client with a button per IdP (as Element) reaches the home-realm page."""
    portal = portals.portal_proxy.base_url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.goto(client_origin + "/")
            page.evaluate("(portal) => showSsoButtons(portal)", portal)
            page.click("text=Choose your organisation")
            page.select_option("#department", "History")
            page.click("#continue")
            page.click(f"a[href*='idp={IDP_ID}']")  # hist's own IdP picker
            page.fill("#username", "hugo")
            page.click("#login")
            page.wait_for_url(f"{client_origin}/cb?*", timeout=15000)
            result = page.evaluate("(portal) => finishSso(portal)", portal)
        finally:
            browser.close()
    assert result == {
        "msc1731Homeserver": portals.hist.base_url,
        "homeserver": portals.hist.base_url,
        "whoami": "@hugo:hist.test",
    }


def test_sso_in_the_fallback_login_page(portals: PortalDeployment) -> None:
    """MSC1731: after SSO through the portal, onLogin(response, homeserver)."""
    capture = (
        "window.onLogin = (response, homeserver) => {"
        " window.__login = {user: response.user_id, homeserver: homeserver}; };"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            context = browser.new_context()
            context.add_init_script(capture)
            page = context.new_page()
            page.goto(portals.portal_proxy.url("/_matrix/static/client/login/"))
            page.click("#sso_form input[type=submit]")
            page.select_option("#department", "Engineering")
            page.click("#continue")
            page.click(f"a[href*='idp={SAML_IDP_ID}']")  # eng's own IdP picker
            page.fill("#username", "erin")
            page.click("#login")
            page.wait_for_function("window.__login !== undefined", timeout=15000)
            result = page.evaluate("window.__login")
        finally:
            browser.close()
    assert result == {"user": "@erin:eng.test", "homeserver": portals.eng.base_url}


@pytest.mark.parametrize("idp", [PORTAL_IDP_ID, SAML_IDP_ID])
def test_sso_with_the_portals_own_idp_in_the_browser(
    portals: PortalDeployment, client_origin: str, idp: str
) -> None:
    """Sign in at the portal's IdP (OIDC or SAML); routed by a claim or an
    attribute; a silent sign-in at the target with the same IdP."""
    portal = portals.portal_proxy.base_url
    start = (
        f"{portal}/_matrix/client/v3/login/sso/redirect/{idp}"
        f"?redirectUrl={client_origin}/cb"
    )
    idp_logins = portals.idp.logins if idp == PORTAL_IDP_ID else portals.saml_idp.logins
    logins = len(idp_logins)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.goto(start)
            page.fill("#username", "ivy")
            page.click("#login")
            page.wait_for_url(f"{client_origin}/cb?*", timeout=15000)
            result = page.evaluate("(portal) => finishSso(portal)", portal)
        finally:
            browser.close()
    assert idp_logins[logins:] == ["ivy", "ivy"]  # the second one silent
    assert result == {
        "msc1731Homeserver": portals.hist.base_url,
        "homeserver": portals.hist.base_url,
        "whoami": "@ivy:hist.test",
    }
