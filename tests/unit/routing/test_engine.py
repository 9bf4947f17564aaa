"""The routing engine: rules, sticky assignments, the weighted pool, config errors."""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synapse.module_api.errors import ConfigError

from synapse_login_redirect.config.routing import parse_routing
from synapse_login_redirect.routing.engine import (
    Decision,
    LoginSubject,
    RoutingEngine,
    WeightedPool,
    claim,
    route,
)

TARGETS = ("eng", "hist", "phys")
KNOWN = "eng, hist, phys, self"
USERS = [f"user{i}" for i in range(300)]


class MemoryAssignmentStore:
    """The routing core's ``Assignments`` in a dict."""

    def __init__(self) -> None:
        self.assignments: dict[str, str] = {}

    async def get(self, user_key: str) -> str | None:
        return self.assignments.get(user_key)

    async def claim(self, user_key: str, target: str, replacing: str | None) -> str:
        if self.assignments.get(user_key) == replacing:
            self.assignments[user_key] = target
        return self.assignments[user_key]


def engine(raw: Mapping[str, Any]) -> RoutingEngine:
    return parse_routing(raw, TARGETS)


def rule_target(raw_rule: Mapping[str, Any], subject: LoginSubject) -> str | None:
    decision = engine({"rules": [raw_rule]}).match_rules(subject)
    return None if decision is None else decision.target


def picks(pool: Mapping[str, int], unhealthy: Sequence[str] = ()) -> list[str | None]:
    weighted = WeightedPool(pool)
    return [weighted.pick(user, unhealthy) for user in USERS]


def decide(
    routing: RoutingEngine,
    subject: LoginSubject,
    *,
    assignment: str | None = None,
    unhealthy: Collection[str] = (),
) -> Decision | None:
    """``route``'s decision, with ``assignment`` stored for the subject."""
    store = MemoryAssignmentStore()
    if assignment is not None and subject.user_key is not None:
        store.assignments[subject.user_key] = assignment
    return asyncio.run(route(routing, subject, store, unhealthy=unhealthy))


# The login subject.


def test_subject_from_a_full_user_id() -> None:
    subject = LoginSubject.from_user("@Alice:Eng.Example:8448")
    assert subject == LoginSubject(localpart="alice", server_name="eng.example:8448")
    assert subject.mxid == "@alice:eng.example:8448"
    assert subject.user_key == "alice"


def test_subject_from_a_bare_localpart() -> None:
    subject = LoginSubject.from_user("Alice")
    assert subject == LoginSubject(localpart="alice")
    assert subject.mxid is None
    assert subject.user_key == "alice"


def test_subject_of_an_email_login() -> None:
    subject = LoginSubject(email="Alice@Lab.Example")
    assert subject.email_domain == "lab.example"
    assert subject.user_key == "alice@lab.example"
    assert LoginSubject(email="no-at-sign").email_domain is None
    assert LoginSubject().user_key is None


def test_subject_attributes_are_copied_and_a_lone_string_is_one_value() -> None:
    groups = ["a", "b"]
    subject = LoginSubject(attributes={"groups": groups, "department": "physics"})
    groups.append("c")
    assert subject.attributes == {"groups": ("a", "b"), "department": ("physics",)}


# One test per rule kind.


def test_server_name_rule() -> None:
    rule = {"server_name": ["eng.example", "Eng2.Example"], "target": "eng"}
    assert rule_target(rule, LoginSubject.from_user("@a:ENG.example")) == "eng"
    assert rule_target(rule, LoginSubject.from_user("@a:eng2.example")) == "eng"
    assert rule_target(rule, LoginSubject.from_user("@a:hist.example")) is None
    assert rule_target(rule, LoginSubject.from_user("a")) is None
    single = {"server_name": "eng.example", "target": "eng"}
    assert rule_target(single, LoginSubject.from_user("@a:eng.example")) == "eng"


def test_localpart_rule_is_a_case_insensitive_full_match() -> None:
    rule = {"localpart": "hist-.*", "target": "hist"}
    assert rule_target(rule, LoginSubject.from_user("hist-ann")) == "hist"
    assert rule_target(rule, LoginSubject.from_user("@HIST-ann:x.example")) == "hist"
    assert rule_target(rule, LoginSubject.from_user("old-hist-ann")) is None
    assert rule_target(rule, LoginSubject(email="hist-ann@x.example")) is None


def test_email_domain_rule() -> None:
    rule = {"email_domain": ["hist.example", "*.hist.example"], "target": "hist"}
    assert rule_target(rule, LoginSubject(email="a@HIST.example")) == "hist"
    assert rule_target(rule, LoginSubject(email="a@lab.hist.example")) == "hist"
    assert rule_target(rule, LoginSubject(email="a@x.lab.hist.example")) == "hist"
    assert rule_target(rule, LoginSubject(email="a@otherhist.example")) is None
    assert rule_target(rule, LoginSubject(email="hist.example")) is None
    assert rule_target(rule, LoginSubject.from_user("@a:hist.example")) is None


def test_email_wildcard_matches_subdomains_only() -> None:
    rule = {"email_domain": "*.hist.example", "target": "hist"}
    assert rule_target(rule, LoginSubject(email="a@lab.hist.example")) == "hist"
    assert rule_target(rule, LoginSubject(email="a@hist.example")) is None


def test_attribute_equals_any_value() -> None:
    rule = {"attribute": {"name": "department", "equals": "physics"}, "target": "phys"}
    both = LoginSubject(attributes={"department": ["maths", "physics"]})
    assert rule_target(rule, both) == "phys"
    assert (
        rule_target(rule, LoginSubject(attributes={"department": ["Physics"]})) is None
    )
    assert rule_target(rule, LoginSubject(attributes={"dept": ["physics"]})) is None
    assert rule_target(rule, LoginSubject.from_user("physics")) is None


def test_attribute_matches_is_a_full_match() -> None:
    rule = {"attribute": {"name": "groups", "matches": "phys-.*"}, "target": "phys"}
    assert (
        rule_target(rule, LoginSubject(attributes={"groups": ["phys-lab"]})) == "phys"
    )
    assert (
        rule_target(rule, LoginSubject(attributes={"groups": ["x-phys-lab"]})) is None
    )


def test_directory_rule_looks_up_mxid_then_localpart_then_email(
    tmp_path: Path,
) -> None:
    path = tmp_path / "directory.tsv"
    path.write_text(
        "@alice:hist.example hist\nalice phys\nbob@lab.example eng\n", encoding="utf-8"
    )
    rule = {"directory": str(path)}
    assert rule_target(rule, LoginSubject.from_user("@Alice:hist.example")) == "hist"
    assert rule_target(rule, LoginSubject.from_user("@alice:eng.example")) == "phys"
    assert rule_target(rule, LoginSubject.from_user("alice")) == "phys"
    assert rule_target(rule, LoginSubject(email="Bob@lab.example")) == "eng"
    assert rule_target(rule, LoginSubject.from_user("bob")) is None


def test_rule_reasons(tmp_path: Path) -> None:
    path = tmp_path / "directory.tsv"
    path.write_text("dora self\n", encoding="utf-8")
    routing = engine(
        {
            "rules": [
                {"server_name": "eng.example", "target": "eng"},
                {"server_name": ["a.example", "b.example"], "target": "eng"},
                {"localpart": "^hist-.*", "target": "hist"},
                {"email_domain": ["*.hist.example", "x.example"], "target": "hist"},
                {"attribute": {"name": "dept", "equals": "physics"}, "target": "phys"},
                {"attribute": {"name": "dept", "matches": "ph.*"}, "target": "phys"},
                {"directory": str(path)},
            ]
        }
    )
    subjects = [
        LoginSubject.from_user("@a:eng.example"),
        LoginSubject.from_user("@a:b.example"),
        LoginSubject.from_user("hist-a"),
        LoginSubject(email="a@x.example"),
        LoginSubject(attributes={"dept": ["physics"]}),
        LoginSubject(attributes={"dept": ["philosophy"]}),
        LoginSubject.from_user("dora"),
    ]
    assert [decide(routing, subject) for subject in subjects] == [
        Decision("eng", "rules[0]: server_name is eng.example"),
        Decision("eng", "rules[1]: server_name is one of a.example, b.example"),
        Decision("hist", "rules[2]: localpart matches '^hist-.*'"),
        Decision("hist", "rules[3]: email domain is one of x.example, *.hist.example"),
        Decision("phys", "rules[4]: attribute dept equals 'physics'"),
        Decision("phys", "rules[5]: attribute dept matches 'ph.*'"),
        Decision("self", f"rules[6]: listed in directory {path}"),
    ]


# Order: rules (first match wins), then the sticky assignment, then the pool.


def test_first_matching_rule_wins() -> None:
    routing = engine(
        {
            "rules": [
                {"localpart": "hist-.*", "target": "hist"},
                {"server_name": "eng.example", "target": "eng"},
            ]
        }
    )
    decision = decide(routing, LoginSubject.from_user("@hist-a:eng.example"))
    assert decision == Decision("hist", "rules[0]: localpart matches 'hist-.*'")


def test_a_rule_beats_the_sticky_assignment() -> None:
    routing = engine({"rules": [{"localpart": "a", "target": "eng"}]})
    decision = decide(routing, LoginSubject.from_user("a"), assignment="hist")
    assert decision is not None and decision.target == "eng"


def test_no_rule_and_no_pool_is_no_decision() -> None:
    routing = engine({"rules": [{"localpart": "a", "target": "eng"}]})
    assert decide(routing, LoginSubject.from_user("b")) is None
    assert decide(engine({}), LoginSubject.from_user("b")) is None
    assert decide(parse_routing(None, TARGETS), LoginSubject.from_user("b")) is None


# Sticky assignments.


def test_sticky_assignment_survives_pool_changes() -> None:
    subject = LoginSubject.from_user("alice")
    sticky = Decision("hist", "sticky assignment")
    for pool in ({"hist": 1}, {"hist": 0, "eng": 1}, {"eng": 1}, {}):
        assert decide(engine({"pool": pool}), subject, assignment="hist") == sticky


def test_sticky_target_is_used_even_when_unhealthy() -> None:
    # The account lives there: another target would be a different account.
    routing = engine({"pool": {"eng": 1, "hist": 1}})
    decision = decide(
        routing, LoginSubject.from_user("a"), assignment="hist", unhealthy={"hist"}
    )
    assert decision == Decision("hist", "sticky assignment")


def test_assignment_to_an_unknown_target_is_replaced() -> None:
    routing = engine({"pool": {"eng": 1}})
    decision = decide(routing, LoginSubject.from_user("a"), assignment="gone")
    assert decision == Decision(
        "eng",
        "pool (weights eng=1; previous target 'gone' is unknown)",
        new_assignment=True,
        replaces="gone",
    )


# The pool.


def test_pool_pick_is_a_new_assignment() -> None:
    routing = engine({"pool": {"eng": 2, "hist": 1}})
    decision = decide(routing, LoginSubject.from_user("alice"))
    assert decision is not None
    assert decision.target in ("eng", "hist")
    assert decision.reason == "pool (weights eng=2, hist=1)"
    assert decision.new_assignment


def test_pool_shares_follow_the_weights() -> None:
    pool = WeightedPool({"eng": 2, "hist": 1, "phys": 1, "self": 0})
    users = [f"@member{i}:example.org" for i in range(20_000)]
    shares = Counter(pool.pick(user) for user in users)
    assert set(shares) == {"eng", "hist", "phys"}
    for target, expected in (("eng", 0.5), ("hist", 0.25), ("phys", 0.25)):
        assert shares[target] / len(users) == pytest.approx(expected, abs=0.015)


def test_pool_skips_unhealthy_targets_for_new_users() -> None:
    routing = engine({"pool": {"eng": 1, "hist": 1, "phys": 1}})
    subjects = [LoginSubject.from_user(user) for user in USERS]
    decisions = [decide(routing, s, unhealthy={"eng", "hist"}) for s in subjects]
    assert {d.target for d in decisions if d is not None} == {"phys"}
    assert decisions[0] == Decision(
        "phys",
        "pool (weights eng=1, hist=1, phys=1; skipped unhealthy eng, hist)",
        new_assignment=True,
    )


def test_pool_without_an_available_target_is_no_decision() -> None:
    routing = engine({"pool": {"eng": 1, "hist": 0}})
    subject = LoginSubject.from_user("alice")
    assert decide(routing, subject, unhealthy=["eng"]) is None
    assert decide(engine({"pool": {"eng": 0}}), subject) is None


def test_pool_needs_a_user_key() -> None:
    routing = engine({"pool": {"eng": 1}})
    only_claims = LoginSubject(attributes={"sub": ["1234"]})
    assert decide(routing, only_claims) is None


def test_pool_picks_are_the_same_in_every_process() -> None:
    # Fixed values: workers (and versions) must agree on a new user's target.
    assert picks({"eng": 2, "hist": 1, "phys": 1})[:10] == [
        "phys", "eng", "eng", "phys", "phys", "hist", "eng", "phys", "eng", "hist",
    ]  # fmt: skip


def test_two_engines_agree_whatever_the_config_order() -> None:
    first = engine({"pool": {"eng": 2, "hist": 1, "phys": 3}})
    second = engine({"pool": {"phys": 3, "hist": 1, "eng": 2}})
    for user in USERS:
        subject = LoginSubject.from_user(user)
        one, other = decide(first, subject), decide(second, subject)
        assert one is not None and other is not None
        assert one.target == other.target


# Reading assignments with route(), storing them with claim().


def _route_and_claim(
    routing: RoutingEngine, subject: LoginSubject, store: MemoryAssignmentStore
) -> Decision | None:
    async def both() -> Decision | None:
        decision = await route(routing, subject, store)
        if decision is None:
            return None
        return await claim(routing, subject, store, decision)

    return asyncio.run(both())


def test_claim_stores_a_new_assignment_then_route_keeps_it() -> None:
    store = MemoryAssignmentStore()
    subject = LoginSubject.from_user("@alice:portal.example")
    routing = engine({"pool": {"eng": 1}})
    first = asyncio.run(route(routing, subject, store))
    assert first == Decision("eng", "pool (weights eng=1)", new_assignment=True)
    assert store.assignments == {}  # route stores nothing
    assert asyncio.run(claim(routing, subject, store, first)) is first
    assert store.assignments == {"alice": "eng"}
    again = _route_and_claim(engine({"pool": {"hist": 1}}), subject, store)
    assert again == Decision("eng", "sticky assignment")
    assert store.assignments == {"alice": "eng"}


def test_the_first_claim_wins() -> None:
    """Two processes placed one new user on different targets at once."""
    store = MemoryAssignmentStore()
    subject = LoginSubject.from_user("alice")
    mine = Decision("hist", "pool (weights hist=1)", new_assignment=True)
    theirs = Decision("eng", "pool (weights eng=1)", new_assignment=True)
    routing = engine({"pool": {"eng": 1, "hist": 1}})
    assert asyncio.run(claim(routing, subject, store, theirs)) is theirs
    settled = asyncio.run(claim(routing, subject, store, mine))
    assert settled == Decision("eng", "sticky assignment")
    assert store.assignments == {"alice": "eng"}


def test_claim_replaces_an_assignment_to_an_unknown_target_once() -> None:
    store = MemoryAssignmentStore()
    store.assignments["alice"] = "gone"
    subject = LoginSubject.from_user("alice")
    routing = engine({"pool": {"eng": 1}})
    decision = asyncio.run(route(routing, subject, store))
    assert decision is not None and decision.replaces == "gone"
    assert asyncio.run(claim(routing, subject, store, decision)) is decision
    assert store.assignments == {"alice": "eng"}
    # A process that read "gone" too, but placed alice elsewhere, follows.
    late = Decision("hist", "pool", new_assignment=True, replaces="gone")
    settled = asyncio.run(claim(engine({"pool": {"hist": 1}}), subject, store, late))
    assert settled == Decision("eng", "sticky assignment")
    assert store.assignments == {"alice": "eng"}


def test_route_leaves_the_store_alone_when_a_rule_matches() -> None:
    store = MemoryAssignmentStore()
    store.assignments["alice"] = "hist"
    routing = engine({"rules": [{"localpart": "alice", "target": "eng"}]})
    decision = asyncio.run(route(routing, LoginSubject.from_user("alice"), store))
    assert decision is not None and decision.target == "eng"
    assert store.assignments == {"alice": "hist"}


def test_route_without_user_key_or_pool() -> None:
    store = MemoryAssignmentStore()
    assert asyncio.run(route(engine({}), LoginSubject.from_user("a"), store)) is None
    assert (
        asyncio.run(route(engine({"pool": {"eng": 1}}), LoginSubject(), store)) is None
    )
    assert store.assignments == {}


# Configuration errors.

RULE_KEYS = "server_name, localpart, email_domain, attribute, directory"


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ([], (), "must be a mapping with the keys: rules, pool"),
        ({"rule": []}, ("rule",), "unknown key 'rule'; allowed keys are: rules, pool"),
        (
            {"rules": {}},
            ("rules",),
            f"must be a list of rules, each with one of: {RULE_KEYS}",
        ),
        (
            {"rules": ["eng"]},
            ("rules", "0"),
            f"must be a mapping with the keys: {RULE_KEYS}, target",
        ),
        (
            {"rules": [{"localpart": "a", "target": "eng"}, {"target": "eng"}]},
            ("rules", "1"),
            f"a rule has exactly one of: {RULE_KEYS}; this one has none",
        ),
        (
            {"rules": [{"server_name": "a", "localpart": "b", "target": "eng"}]},
            ("rules", "0"),
            f"a rule has exactly one of: {RULE_KEYS}; "
            "this one has server_name and localpart",
        ),
        (
            {"rules": [{"server_name": "a", "taget": "eng"}]},
            ("rules", "0", "taget"),
            f"unknown key 'taget'; allowed keys are: {RULE_KEYS}, target",
        ),
        (
            {"rules": [{"server_name": "a"}]},
            ("rules", "0", "target"),
            "is required: the target of the users this rule matches; "
            f"known targets are: {KNOWN}",
        ),
        (
            {"rules": [{"server_name": "a", "target": "physics"}]},
            ("rules", "0", "target"),
            f"unknown target 'physics'; known targets are: {KNOWN}",
        ),
        (
            {"rules": [{"server_name": [], "target": "eng"}]},
            ("rules", "0", "server_name"),
            "must be a server name, e.g. eng.example, or a list of them",
        ),
        (
            {"rules": [{"server_name": ["a.example", "a b"], "target": "eng"}]},
            ("rules", "0", "server_name", "1"),
            "must be a server name, e.g. eng.example, not 'a b'",
        ),
        (
            {"rules": [{"localpart": "(", "target": "eng"}]},
            ("rules", "0", "localpart"),
            "invalid regular expression '(': "
            "missing ), unterminated subpattern at position 0",
        ),
        (
            {"rules": [{"localpart": 5, "target": "eng"}]},
            ("rules", "0", "localpart"),
            "must be a regular expression string, not 5",
        ),
        (
            {"rules": [{"email_domain": "x*.example", "target": "eng"}]},
            ("rules", "0", "email_domain"),
            "must be a domain like hist.example or a wildcard like *.hist.example, "
            "not 'x*.example'",
        ),
        (
            {"rules": [{"attribute": "department", "target": "eng"}]},
            ("rules", "0", "attribute"),
            "must be a mapping with the keys: name, equals, matches",
        ),
        (
            {"rules": [{"attribute": {"name": "d", "value": "x"}, "target": "eng"}]},
            ("rules", "0", "attribute", "value"),
            "unknown key 'value'; allowed keys are: name, equals, matches",
        ),
        (
            {"rules": [{"attribute": {"equals": "x"}, "target": "eng"}]},
            ("rules", "0", "attribute", "name"),
            "is required: the SAML attribute or OIDC claim, e.g. department",
        ),
        (
            {"rules": [{"attribute": {"name": "d"}, "target": "eng"}]},
            ("rules", "0", "attribute"),
            "needs exactly one of: equals (a string), matches (a regular expression)",
        ),
        (
            {
                "rules": [
                    {
                        "attribute": {"name": "d", "equals": "x", "matches": "x"},
                        "target": "eng",
                    }
                ]
            },
            ("rules", "0", "attribute"),
            "needs exactly one of: equals (a string), matches (a regular expression)",
        ),
        (
            {"rules": [{"attribute": {"name": "d", "equals": 42}, "target": "eng"}]},
            ("rules", "0", "attribute", "equals"),
            "must be a string (quote numbers), not 42",
        ),
        (
            {"rules": [{"attribute": {"name": "d", "matches": "["}, "target": "eng"}]},
            ("rules", "0", "attribute", "matches"),
            "invalid regular expression '[': unterminated character set at position 0",
        ),
        (
            {"rules": [{"directory": "/x.tsv", "target": "eng"}]},
            ("rules", "0", "target"),
            "is not allowed in a directory rule: "
            "the directory file names each user's target",
        ),
        (
            {"rules": [{"directory": 5}]},
            ("rules", "0", "directory"),
            "must be the path of a directory file, not 5",
        ),
        (
            {"rules": [{"directory": "/nonexistent/directory.tsv"}]},
            ("rules", "0", "directory"),
            "cannot read /nonexistent/directory.tsv: No such file or directory",
        ),
        (
            {"pool": ["eng"]},
            ("pool",),
            "must be a mapping of target name to weight, e.g. {eng: 2, hist: 1}",
        ),
        (
            {"pool": {"nope": 1}},
            ("pool", "nope"),
            f"unknown target 'nope'; known targets are: {KNOWN}",
        ),
        (
            {"pool": {"eng": -1}},
            ("pool", "eng"),
            "must be a whole number >= 0 (0 takes no new users), not -1",
        ),
        (
            {"pool": {"eng": True}},
            ("pool", "eng"),
            "must be a whole number >= 0 (0 takes no new users), not True",
        ),
        (
            {"pool": {"eng": "2"}},
            ("pool", "eng"),
            "must be a whole number >= 0 (0 takes no new users), not '2'",
        ),
    ],
)
def test_config_errors(raw: Any, path: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_routing(raw, TARGETS)
    assert (info.value.path, info.value.msg) == (path, message)


def test_config_error_paths_start_with_the_given_prefix() -> None:
    with pytest.raises(ConfigError) as info:
        parse_routing({"pool": {"eng": -1}}, TARGETS, path=("routing",))
    assert info.value.path == ("routing", "pool", "eng")


def test_bad_directory_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "directory.tsv"
    path.write_text("alice eng\nbob nope\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        parse_routing({"rules": [{"directory": str(path)}]}, TARGETS)
    assert info.value.path == ("rules", "0", "directory")
    assert info.value.msg == (
        f"{path}: 1 bad line: line 2: unknown target 'nope'; known targets are: {KNOWN}"
    )


# Properties.

NAMES = ("eng", "hist", "phys", "self")

raw_rules = st.one_of(
    st.fixed_dictionaries(
        {
            "server_name": st.lists(
                st.sampled_from(["eng.example", "ENG.example", "hist.example"]),
                min_size=1,
                max_size=2,
            )
        }
    ),
    st.fixed_dictionaries({"localpart": st.sampled_from(["a.*", "b", "[ab]+", "A"])}),
    st.fixed_dictionaries(
        {
            "email_domain": st.lists(
                st.sampled_from(["x.example", "*.x.example", "X.EXAMPLE", "y.example"]),
                min_size=1,
                max_size=2,
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "attribute": st.one_of(
                st.fixed_dictionaries(
                    {
                        "name": st.just("dept"),
                        "equals": st.sampled_from(["a", "b"]),
                    }
                ),
                st.fixed_dictionaries(
                    {
                        "name": st.just("dept"),
                        "matches": st.sampled_from(["a|b", "[a-z]+"]),
                    }
                ),
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "directory": st.dictionaries(
                st.sampled_from(
                    ["a", "B", "@a:eng.example", "@b:Hist.example", "a@x.example"]
                ),
                st.sampled_from(NAMES),
            )
        }
    ),
).flatmap(
    lambda rule: (
        st.just(rule)
        if "directory" in rule
        else st.sampled_from(NAMES).map(lambda target: {**rule, "target": target})
    )
)

raw_subjects = st.fixed_dictionaries(
    {
        "localpart": st.sampled_from([None, "a", "A", "b", "ab", "c"]),
        "server_name": st.sampled_from(
            [None, "eng.example", "Eng.Example", "hist.example"]
        ),
        "email": st.sampled_from(
            [None, "a@x.example", "b@Sub.X.example", "c@y.example", "x"]
        ),
        "attributes": st.dictionaries(
            st.sampled_from(["dept", "role"]),
            st.lists(st.sampled_from(["a", "A", "b", "C"]), min_size=1, max_size=2),
        ),
    }
)


def reference(
    rules: list[dict[str, Any]], subject: dict[str, Any]
) -> tuple[int, str] | None:
    """(index, target) of the first matching rule, written as plainly as possible."""
    localpart, server_name, email = (
        subject["localpart"],
        subject["server_name"],
        subject["email"],
    )
    domain = email.lower().split("@")[1] if email and "@" in email else None
    for i, rule in enumerate(rules):
        if "server_name" in rule:
            if server_name and server_name.lower() in [
                n.lower() for n in rule["server_name"]
            ]:
                return i, rule["target"]
        elif "localpart" in rule:
            if localpart and re.fullmatch(rule["localpart"], localpart, re.IGNORECASE):
                return i, rule["target"]
        elif "email_domain" in rule:
            for pattern in (p.lower() for p in rule["email_domain"]):
                if domain is None:
                    continue
                if pattern.startswith("*."):
                    if domain.endswith(pattern[1:]):
                        return i, rule["target"]
                elif domain == pattern:
                    return i, rule["target"]
        elif "attribute" in rule:
            spec = rule["attribute"]
            for value in subject["attributes"].get(spec["name"], []):
                if "equals" in spec and value == spec["equals"]:
                    return i, rule["target"]
                if "matches" in spec and re.fullmatch(spec["matches"], value):
                    return i, rule["target"]
        else:
            table = {user.lower(): target for user, target in rule["directory"].items()}
            keys = [
                f"@{localpart}:{server_name}" if localpart and server_name else None,
                localpart,
                email,
            ]
            for key in keys:
                if key is not None and key.lower() in table:
                    return i, table[key.lower()]
    return None


def with_directory_files(rules: list[dict[str, Any]], tmp: str) -> list[dict[str, Any]]:
    """The rules with each directory table written to a file."""
    written = []
    for i, rule in enumerate(rules):
        if "directory" in rule:
            path = Path(tmp) / f"directory{i}.tsv"
            path.write_text(
                "".join(f"{u}\t{t}\n" for u, t in rule["directory"].items())
            )
            rule = {"directory": str(path)}
        written.append(rule)
    return written


@settings(max_examples=400)
@given(st.lists(raw_rules, max_size=5), raw_subjects)
def test_first_match_wins_like_the_reference(
    rules: list[dict[str, Any]], subject: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        routing = engine({"rules": with_directory_files(rules, tmp)})
    decision = routing.match_rules(LoginSubject(**subject))
    expected = reference(rules, subject)
    if expected is None:
        assert decision is None
    else:
        assert decision is not None
        assert (decision.reason.split(":")[0], decision.target) == (
            f"rules[{expected[0]}]",
            expected[1],
        )


pools = st.dictionaries(st.sampled_from(NAMES), st.integers(0, 3))
positive_pools = st.dictionaries(st.sampled_from(NAMES), st.integers(1, 5), min_size=1)


@given(
    st.sampled_from(USERS[:20]),
    st.lists(st.tuples(pools, st.sets(st.sampled_from(NAMES))), min_size=1, max_size=8),
)
def test_an_assignment_never_changes_while_its_target_is_known(
    user: str, steps: list[tuple[dict[str, int], set[str]]]
) -> None:
    store = MemoryAssignmentStore()
    subject = LoginSubject.from_user(user)
    assigned = None
    for pool, unhealthy in steps:
        routing = engine({"pool": pool})
        decision = asyncio.run(route(routing, subject, store, unhealthy=unhealthy))
        if decision is not None:
            decision = asyncio.run(claim(routing, subject, store, decision))
        if assigned is not None:
            assert decision == Decision(assigned, "sticky assignment")
        elif decision is not None:
            assert decision.new_assignment and decision.target not in unhealthy
            assert pool.get(decision.target, 0) > 0
            assigned = decision.target
        assert store.assignments == ({} if assigned is None else {user: assigned})


@given(positive_pools, st.sampled_from(NAMES), st.integers(1, 5))
def test_adding_a_target_only_moves_users_to_it(
    pool: dict[str, int], new: str, weight: int
) -> None:
    before = picks({name: w for name, w in pool.items() if name != new})
    after = picks({**pool, new: weight})
    assert all(a in (b, new) for b, a in zip(before, after))


@given(positive_pools, st.sampled_from(NAMES), st.integers(0, 5))
def test_changing_a_weight_only_moves_users_to_or_from_that_target(
    pool: dict[str, int], changed: str, weight: int
) -> None:
    before = picks(pool)
    after = picks({**pool, changed: weight})
    moved = [(b, a) for b, a in zip(before, after) if b != a]
    grew = weight > pool.get(changed, 0)
    assert all((a if grew else b) == changed for b, a in moved)


@given(positive_pools, st.sampled_from(NAMES))
def test_an_unhealthy_target_only_moves_its_own_users(
    pool: dict[str, int], down: str
) -> None:
    before = picks(pool)
    after = picks(pool, unhealthy=[down])
    assert all(a == b for b, a in zip(before, after) if b != down)
    assert down not in after


@given(
    st.permutations(list(NAMES)), st.lists(st.integers(1, 5), min_size=4, max_size=4)
)
def test_picks_do_not_depend_on_pool_order(
    order: list[str], weights: list[int]
) -> None:
    pool = dict(zip(NAMES, weights))
    assert picks({name: pool[name] for name in order}) == picks(pool)
