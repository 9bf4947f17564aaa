"""Every configuration mistake is a ConfigError naming the key and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest
from synapse.module_api.errors import ConfigError

from synapse_login_redirect.config.module import LoginRedirectConfig, parse_config
from synapse_login_redirect.config.portal import Target
from synapse_login_redirect.target.appservice_login import (
    STABLE_TYPE,
    UNSTABLE_TYPE,
    AppserviceLoginConfig,
)
from synapse_login_redirect.web.redirect_policy import UrlPrefix


def error_for(raw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value


def test_empty_config_gives_defaults() -> None:
    assert parse_config(None) == parse_config({}) == LoginRedirectConfig()
    config = parse_config({})
    assert config.base_url is None
    assert config.base_cs_url is False
    assert config.sso_homeserver_param is True
    assert config.targets == {}


def test_full_config() -> None:
    config = parse_config(
        {
            "base_url": "https://matrix.eng.example/",
            "identity_server": "https://id.example",
            "base_cs_url": True,
            "sso_homeserver_param": False,
            "targets": {
                "eng": {"base_url": "https://matrix.eng.example:8448/prefix/"},
                "hist": {
                    "base_url": "https://matrix.hist.example",
                    "proxy_url": "http://10.0.0.12:8009/",
                    "identity_server": "https://id.hist.example",
                    "mode": "proxy",
                    "public_name": "History",
                },
            },
        }
    )
    assert config.base_url == "https://matrix.eng.example"
    assert config.identity_server == "https://id.example"
    assert config.base_cs_url is True
    assert config.sso_homeserver_param is False
    assert config.targets == {
        "eng": Target(
            "eng",
            "https://matrix.eng.example:8448/prefix",
            mode="redirect",
            public_name="matrix.eng.example:8448",
        ),
        "hist": Target(
            "hist",
            "https://matrix.hist.example",
            "https://id.hist.example",
            mode="proxy",
            public_name="History",
            proxy_url="http://10.0.0.12:8009",
        ),
    }
    # Without proxy_url the portal posts to base_url.
    assert config.targets["eng"].proxy_url == "https://matrix.eng.example:8448/prefix"
    assert config.portal is None


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ([], (), "must be a mapping with the keys: base_url, identity_server"),
        (
            {"base_urls": "x"},
            ("base_urls",),
            "unknown key 'base_urls'; allowed keys are: base_url,",
        ),
        ({"base_url": 5}, ("base_url",), "must be a URL string"),
        (
            {"base_url": "matrix.example"},
            ("base_url",),
            "must start with https:// or http://",
        ),
        (
            {"base_url": "ftp://matrix.example"},
            ("base_url",),
            "must start with https://",
        ),
        ({"base_url": "https://"}, ("base_url",), "has no host name"),
        (
            {"base_url": "https://u:p@matrix.example"},
            ("base_url",),
            "must not contain credentials",
        ),
        (
            {"base_url": "https://matrix.example/?a=b"},
            ("base_url",),
            "must not have a query string",
        ),
        (
            {"base_url": "https://matrix.example/#x"},
            ("base_url",),
            "must not have a fragment",
        ),
        (
            {"base_url": "https://matrix.example:99999"},
            ("base_url",),
            "is not a valid URL",
        ),
        (
            {"identity_server": "id.example"},
            ("identity_server",),
            "must start with https://",
        ),
        ({"base_cs_url": "yes"}, ("base_cs_url",), "must be true or false, not 'yes'"),
        (
            {"sso_homeserver_param": 1},
            ("sso_homeserver_param",),
            "must be true or false",
        ),
        (
            {"targets": ["eng"]},
            ("targets",),
            "must be a mapping of target name to target settings",
        ),
        (
            {"targets": {"Eng!": {}}},
            ("targets", "Eng!"),
            "target name 'Eng!' is not allowed",
        ),
        (
            {"targets": {"self": {}}},
            ("targets", "self"),
            "target name 'self' is reserved",
        ),
        (
            {"targets": {"eng": None}},
            ("targets", "eng"),
            "must be a mapping with the keys: base_url",
        ),
        ({"targets": {"eng": {}}}, ("targets", "eng", "base_url"), "is required"),
        (
            {"targets": {"eng": {"base_url": "https://e", "modes": "x"}}},
            ("targets", "eng", "modes"),
            "unknown key 'modes'; allowed keys are: base_url, proxy_url, "
            "identity_server, mode, public_name",
        ),
        (
            {"targets": {"eng": {"base_url": "https://e", "mode": "relay"}}},
            ("targets", "eng", "mode"),
            "must be one of: redirect, proxy, not 'relay'",
        ),
        (
            {"targets": {"eng": {"base_url": "https://e", "public_name": " "}}},
            ("targets", "eng", "public_name"),
            "must be a non-empty string: how error messages name this homeserver",
        ),
        (  # several mistakes: the first in the order the keys are read
            {
                "targets": {
                    "eng": {
                        "base_url": "https://e",
                        "mode": "relay",
                        "public_name": " ",
                        "identity_server": 5,
                    }
                }
            },
            ("targets", "eng", "mode"),
            "must be one of: redirect, proxy, not 'relay'",
        ),
        (
            {"portal": []},
            ("portal",),
            "must be a mapping with the keys: rules, pool, unplaced_message",
        ),
        (
            {"portal": {"rule": []}},
            ("portal", "rule"),
            "unknown key 'rule'",
        ),
        (
            {"portal": {"pool": {"eng": 1}}},
            ("portal", "pool", "eng"),
            "unknown target 'eng'; known targets are: self",
        ),
        (
            {"portal": {"rules": [{"localpart": "a.*", "target": "nowhere"}]}},
            ("portal", "rules", "0", "target"),
            "unknown target 'nowhere'",
        ),
        (
            {"portal": {"unplaced_message": ""}},
            ("portal", "unplaced_message"),
            "must be a non-empty string",
        ),
        (
            {"portal": {"proxy_timeout": 0}},
            ("portal", "proxy_timeout"),
            "must be a number of seconds > 0, not 0",
        ),
        (
            {"portal": {"proxy_timeout": "10s"}},
            ("portal", "proxy_timeout"),
            "must be a number of seconds > 0, not '10s'",
        ),
        (
            {"redirect_url": {"require_https": "yes"}},
            ("redirect_url", "require_https"),
            "must be true or false",
        ),
        (
            {"redirect_url": {"allowed_prefixes": "https://app.example/"}},
            ("redirect_url", "allowed_prefixes"),
            "must be a list of URL prefixes",
        ),
        (
            {
                "redirect_url": {
                    "allowed_prefixes": ["https://a.example/", "app.example"]
                }
            },
            ("redirect_url", "allowed_prefixes", "1"),
            "'app.example' is refused: it is not an absolute URL; a prefix names "
            "an origin and a path, e.g. https://app.element.io/, "
            "http://127.0.0.1: (any port) or element://connect",
        ),
        (
            {"redirect_url": {"allowed_prefixes": ["http://127.0.0.1:@evil.example"]}},
            ("redirect_url", "allowed_prefixes", "0"),
            "it must not contain a user name or password",
        ),
        (
            {"redirect_url": {"allowed_prefixes": ["element://"]}},
            ("redirect_url", "allowed_prefixes", "0"),
            "it does not name an origin",
        ),
        (
            {"redirect_url": {"allowed_prefixes": [42]}},
            ("redirect_url", "allowed_prefixes", "0"),
            "must be a string",
        ),
        (
            {"portal": {"sso": {"departments": ["eng"]}}},
            ("portal", "sso", "departments"),
            "must be a mapping of the label users pick to a target name",
        ),
        (
            {"portal": {"sso": {"departments": {"Engineering": "self"}}}},
            ("portal", "sso", "departments", "Engineering"),
            "unknown target 'self'; known targets are: none (single sign-on "
            "cannot stay on the portal)",
        ),
        (
            {"portal": {"sso": {"ask_user": False}}},
            ("portal", "sso"),
            "needs departments, ask_user: true, or both",
        ),
        (
            {"portal": {"sso": {"session_lifetime": 0}}},
            ("portal", "sso", "session_lifetime"),
            "must be a number of seconds > 0",
        ),
        (
            {"portal": {"sso": {"portal_idps": ["oidc-corp"]}}},
            ("portal", "sso", "portal_idps"),
            "must be a mapping of the portal's own idp id to the idp id the targets",
        ),
        (
            {"portal": {"sso": {"idps": []}}},
            ("portal", "sso", "idps"),
            "unknown key 'idps'; allowed keys are: departments, ask_user, "
            "session_lifetime, token_lifetime, portal_idps, realm_page_name",
        ),
        (
            {"portal": {"sso": {"realm_page_name": " "}}},
            ("portal", "sso", "realm_page_name"),
            "must be a non-empty string, not ' '",
        ),
        (
            {"portal": {"sso": {"max_sessions": 0}}},
            ("portal", "sso", "max_sessions"),
            "must be a number of sign-ins >= 1, not 0",
        ),
        (
            {"portal": {"sso": {"max_sessions": True}}},
            ("portal", "sso", "max_sessions"),
            "must be a number of sign-ins >= 1, not True",
        ),
        (
            {"portal": {"sso": {"departments": {"D" * 256: "eng"}}}},
            ("portal", "sso", "departments", "D" * 256),
            "a department label is at most 255 bytes",
        ),
        (
            {"portal": {"health_check_interval": -1}},
            ("portal", "health_check_interval"),
            "must be a number of seconds >= 0 (0 turns it off), not -1",
        ),
        (
            {"targets": {"eng": {"base_url": "e.example"}}},
            ("targets", "eng", "base_url"),
            "must start with https://",
        ),
        (
            {"targets": {"eng": {"base_url": "https://e", "proxy_url": "e:8009"}}},
            ("targets", "eng", "proxy_url"),
            "must start with https:// or http://",
        ),
        (
            {"targets": {"eng": {"base_url": "https://e", "proxy_url": 8009}}},
            ("targets", "eng", "proxy_url"),
            "must be a URL string",
        ),
        (
            {"appservice_login": []},
            ("appservice_login",),
            "must be a mapping with the keys: types, errors",
        ),
        (
            {"appservice_login": {"types": ["m.login.password"]}},
            ("appservice_login", "types"),
            "must be a list of login types from: m.login.application_service, "
            "uk.half-shot.msc2778.login.application_service",
        ),
        (
            {"appservice_login": {"types": "m.login.application_service"}},
            ("appservice_login", "types"),
            "must be a list of login types",
        ),
        (
            {"appservice_login": {"errors": "spec"}},
            ("appservice_login", "errors"),
            "must be one of: msc2778, synapse, not 'spec'",
        ),
    ],
)
def test_mistakes(raw: Any, path: tuple[str, ...], message: str) -> None:
    error = error_for(raw)
    assert tuple(error.path or ()) == path
    assert message in error.msg


def test_appservice_login_settings() -> None:
    default = parse_config({}).appservice_login
    assert default == AppserviceLoginConfig(
        types=(STABLE_TYPE, UNSTABLE_TYPE), errors="msc2778"
    )
    chosen = parse_config(
        {"appservice_login": {"types": [STABLE_TYPE, STABLE_TYPE], "errors": "synapse"}}
    ).appservice_login
    assert chosen == AppserviceLoginConfig(types=(STABLE_TYPE,), errors="synapse")
    assert (
        parse_config({"appservice_login": {"types": []}}).appservice_login.types == ()
    )


def test_portal_settings() -> None:
    config = parse_config(
        {
            "targets": {"eng": {"base_url": "https://matrix.eng.example"}},
            "portal": {
                "rules": [{"server_name": "eng.example", "target": "eng"}],
                "pool": {"eng": 1, "self": 0},
                "unplaced_message": "Ask the help desk.",
                "proxy_timeout": 2.5,
                "health_check_interval": 0,
            },
        }
    )
    assert config.portal is not None
    assert config.portal.unplaced_message == "Ask the help desk."
    assert config.portal.proxy_timeout == 2.5
    assert config.portal.health_check_interval == 0
    assert config.portal.engine.pool.weights == {"eng": 1, "self": 0}
    defaults = parse_config({"portal": {}}).portal
    assert defaults is not None
    assert defaults.proxy_timeout == 10
    assert defaults.health_check_interval == 30
    assert "cannot tell which homeserver" in defaults.unplaced_message
    assert defaults.sso is None


def test_portal_sso_and_redirect_url_settings() -> None:
    config = parse_config(
        {
            "targets": {"eng": {"base_url": "https://matrix.eng.example"}},
            "portal": {"sso": {"departments": {"Engineering": "eng"}}},
            "redirect_url": {
                "require_https": True,
                "allowed_prefixes": ["element://connect", "https://app.example/"],
            },
        }
    )
    assert config.portal is not None and config.portal.sso is not None
    assert config.portal.sso.departments == {"Engineering": "eng"}
    assert config.portal.sso.ask_user is True
    assert config.portal.sso.session_lifetime == 600
    assert config.portal.sso.token_lifetime == 120
    assert config.portal.sso.realm_page_name == "Choose your organisation"
    assert config.portal.sso.max_sessions == 10000
    assert config.redirect_url.require_https is True
    assert config.redirect_url.allowed_prefixes == (
        UrlPrefix("element://connect", "element", "connect", None, False, ""),
        UrlPrefix("https://app.example/", "https", "app.example", None, False, "/"),
    )
    assert parse_config({}).redirect_url.allowed_prefixes == ()
