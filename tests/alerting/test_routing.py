"""The routing tree, on a config written the way Alertmanager's documentation writes them."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml
from pydantic import ValidationError

from trm_otel.alerting import routing as module
from trm_otel.alerting.routing import (
    MatchedRoute,
    RootRouteConfig,
    Route,
    RouteConfig,
    check_references,
    group_key,
    group_labels,
    receivers_used,
)
from trm_otel.errors import ConfigError

ALERTMANAGER_STYLE = """
route:
  receiver: default-receiver
  group_by: [alertname, cluster]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    # Database alerts page the DBAs quickly.
    - receiver: database-pager
      group_wait: 10s
      matchers: ['service=~"mysql|cassandra"']

    # Frontend alerts are grouped by product and environment.
    - receiver: frontend-pager
      group_by: [product, environment]
      matchers: [team="frontend"]

    # In-house service: the developers during the day, on-call at night.
    - receiver: dev-pager
      matchers: [service="inhouse-service"]
      mute_time_intervals: [offhours, holidays]
      continue: true
    - receiver: on-call-pager
      matchers: [service="inhouse-service"]
      active_time_intervals: [offhours, holidays]

    # Legacy match/match_re keys still work.
    - receiver: team-X-mails
      match: {owner: team-X}
      match_re: {env: "prod|staging"}
      repeat_interval: 1h30m
      routes:
        - receiver: team-X-pager
          match: {severity: critical}

    # trm-otel: OpenTelemetry names and escalation policies.
    - matchers: ['service.name="checkout"']
      escalation_policy: payments
      group_by: ["..."]
      routes:
        - matchers: [severity="critical"]
          receiver: payments-pager
        - matchers: [severity="warning"]
          receiver: payments-chat
          group_by: [alertname]
          escalation_policy: ""
"""


@pytest.fixture(scope="module")
def root() -> Route:
    return Route(RootRouteConfig.model_validate(yaml.safe_load(ALERTMANAGER_STYLE)["route"]))


def receivers(root: Route, labels: dict[str, str]) -> list[str]:
    return [m.receiver for m in root.match(labels)]


def test_exported_names() -> None:
    assert sorted(module.__all__) == [
        "GROUP_BY_ALL",
        "MatchedRoute",
        "RootRouteConfig",
        "Route",
        "RouteConfig",
        "check_references",
        "group_key",
        "group_labels",
        "receivers_used",
    ]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"alertname": "Disk", "service": "mysql"}, ["database-pager"]),
        ({"alertname": "Disk", "service": "mysql-proxy"}, ["default-receiver"]),  # regexes are anchored
        ({"team": "frontend", "service": "cassandra"}, ["database-pager"]),  # first match wins
        ({"team": "frontend"}, ["frontend-pager"]),
        ({"service": "inhouse-service"}, ["dev-pager", "on-call-pager"]),  # continue: true
        ({"owner": "team-X", "env": "prod"}, ["team-X-mails"]),  # no child matched: the route itself
        ({"owner": "team-X", "env": "prod", "severity": "critical"}, ["team-X-pager"]),
        ({"owner": "team-X", "env": "dev", "severity": "critical"}, ["default-receiver"]),
        ({"service.name": "checkout", "severity": "critical"}, ["payments-pager"]),
        ({"service.name": "checkout", "severity": "info"}, ["default-receiver"]),  # the checkout route itself
        ({"alertname": "Anything"}, ["default-receiver"]),
    ],
)
def test_matching(root: Route, labels: dict[str, str], expected: list[str]) -> None:
    assert receivers(root, labels) == expected


def test_settings_are_inherited_unless_set(root: Route) -> None:
    (db,) = root.match({"service": "mysql"})
    assert (db.group_wait, db.group_interval, db.repeat_interval) == (10.0, 300.0, 4 * 3600.0)
    assert db.group_by == {"alertname", "cluster"} and not db.group_by_all
    (frontend,) = root.match({"team": "frontend"})
    assert frontend.group_by == {"product", "environment"} and frontend.group_wait == 30.0
    (pager,) = root.match({"owner": "team-X", "env": "prod", "severity": "critical"})
    assert pager.repeat_interval == 5400.0  # from team-X-mails, its parent
    (checkout,) = root.match({"service.name": "checkout", "severity": "info"})
    assert checkout.receiver == "default-receiver" and checkout.group_by_all
    assert checkout.escalation_policy == "payments"
    (critical,) = root.match({"service.name": "checkout", "severity": "critical"})
    assert critical.group_by_all and critical.escalation_policy == "payments"
    (warning,) = root.match({"service.name": "checkout", "severity": "warning"})
    assert warning.group_by == {"alertname"} and not warning.group_by_all
    assert warning.escalation_policy is None  # "" stops the inherited policy


def test_time_intervals_are_not_inherited(root: Route) -> None:
    dev, on_call = root.match({"service": "inhouse-service"})
    assert dev.mute_time_intervals == ("offhours", "holidays") and dev.active_time_intervals == ()
    assert on_call.active_time_intervals == ("offhours", "holidays") and on_call.mute_time_intervals == ()
    muted_parent = {"matchers": ["a=1"], "mute_time_intervals": ["night"], "routes": [{"matchers": ["b=2"]}]}
    parent = Route(RootRouteConfig.model_validate({"receiver": "r", "routes": [muted_parent]}))
    (child,) = parent.match({"a": "1", "b": "2"})
    assert child.path == "route.routes[0].routes[0]" and child.mute_time_intervals == ()


def test_defaults_without_any_settings() -> None:
    (only,) = Route(RootRouteConfig(receiver="r")).match({})
    assert only == MatchedRoute(
        receiver="r",
        group_by=frozenset(),
        group_by_all=False,
        group_wait=30.0,
        group_interval=300.0,
        repeat_interval=14400.0,
        mute_time_intervals=(),
        active_time_intervals=(),
        escalation_policy=None,
        route_key="{}",
        path="route",
    )


def test_route_keys_are_alertmanagers(root: Route) -> None:
    keys = {r.config.receiver: r.settings.route_key for r in root.walk() if r.config.receiver}
    assert keys["default-receiver"] == "{}"
    assert keys["database-pager"] == '{}/{service=~"mysql|cassandra"}'
    assert keys["team-X-mails"] == '{}/{env=~"prod|staging",owner="team-X"}'  # sorted by label name
    assert keys["team-X-pager"] == '{}/{env=~"prod|staging",owner="team-X"}/{severity="critical"}'
    assert keys["payments-pager"] == '{}/{service.name="checkout"}/{severity="critical"}'
    # The two in-house routes have the same matchers, so Alertmanager's id (with the position) is used.
    assert keys["dev-pager"] == '{}/{service="inhouse-service"}/2'
    assert keys["on-call-pager"] == '{}/{service="inhouse-service"}/3'
    assert [r.path for r in root.walk()][:3] == ["route", "route.routes[0]", "route.routes[1]"]
    assert [r.settings.route_key for r in root.walk()][-3:] == [
        '{}/{service.name="checkout"}',
        '{}/{service.name="checkout"}/{severity="critical"}',
        '{}/{service.name="checkout"}/{severity="warning"}',
    ]


def test_route_keys_stay_unique_when_siblings_collide() -> None:
    fan_out = Route(RootRouteConfig.model_validate({
        "receiver": "r",
        "routes": [
            {"receiver": "a", "continue": True, "routes": [{"matchers": ["x=1"], "receiver": "a1"}]},
            {"receiver": "b", "routes": [{"matchers": ["x=1"], "receiver": "b1"}]},
        ],
    }))
    matched = fan_out.match({"x": "1"})
    assert [m.receiver for m in matched] == ["a1", "b1"]
    assert [m.route_key for m in matched] == [
        '{}/{}/{x="1"}@route.routes[0].routes[0]',
        '{}/{}/{x="1"}@route.routes[1].routes[0]',
    ]
    assert [m.route_key for m in fan_out.match({})] == ["{}/{}/0", "{}/{}/1"]
    keys = [r.settings.route_key for r in fan_out.walk()]
    assert len(set(keys)) == len(keys)


def test_group_labels_and_group_key(root: Route) -> None:
    labels = {"alertname": "DiskFull", "cluster": "eu-1", "service": "mysql", "instance": "db-3"}
    (db,) = root.match(labels)
    assert group_labels(db, labels) == {"alertname": "DiskFull", "cluster": "eu-1"}
    assert group_key(db, labels) == '{}/{service=~"mysql|cassandra"}:{alertname="DiskFull", cluster="eu-1"}'
    # A group_by label the alert lacks is left out, as in Alertmanager.
    assert group_key(db, {"service": "mysql", "alertname": "X"}) == '{}/{service=~"mysql|cassandra"}:{alertname="X"}'
    every = {"service.name": "checkout", "severity": "info", "quote": 'a"b'}
    (checkout,) = root.match(every)
    assert group_labels(checkout, every) == dict(sorted(every.items()))
    assert group_key(checkout, every) == (
        '{}/{service.name="checkout"}:{quote="a\\"b", service.name="checkout", severity="info"}'
    )
    (plain,) = Route(RootRouteConfig(receiver="r")).match({})
    assert group_key(plain, {"a": "1"}) == "{}:{}"


def test_match_root_and_replace_for_pinned_receivers(root: Route) -> None:
    pinned = replace(root.match_root(), receiver="ops")
    assert pinned.receiver == "ops" and pinned.route_key == "{}"


def test_continue_on_a_subtree_and_stop_without_it() -> None:
    tree = Route(RootRouteConfig.model_validate({
        "receiver": "root",
        "routes": [
            {"matchers": ["a=1"], "continue": True, "routes": [{"matchers": ["b=1"], "receiver": "ab"}]},
            {"matchers": ["a=1"], "receiver": "a-again"},
            {"matchers": ["a=1"], "receiver": "never"},
        ],
    }))
    assert [m.receiver for m in tree.match({"a": "1", "b": "1"})] == ["ab", "a-again"]
    assert [m.receiver for m in tree.match({"a": "1"})] == ["root", "a-again"]  # subtree matched itself
    assert [m.receiver for m in tree.match({"a": "2"})] == ["root"]


def test_durations_and_continue_alias() -> None:
    raw = {"group_wait": "0s", "group_interval": "1m30s", "repeat_interval": "1d", "continue": True}
    config = RouteConfig.model_validate(raw)
    assert (config.group_wait, config.group_interval, config.repeat_interval) == (0.0, 90.0, 86400.0)
    assert config.continue_
    numbers = RouteConfig.model_validate(yaml.safe_load("match: {code: 500}\nmatch_re: {code: 5}\nreceiver: 42"))
    assert (numbers.match, numbers.match_re, numbers.receiver) == ({"code": "500"}, {"code": "5"}, "42")
    assert "continue" in config.model_dump(by_alias=True)


@pytest.mark.parametrize(
    ("raw", "loc", "message"),
    [
        ({"group_by": ["...", "alertname"]}, ("group_by",), "cannot be combined with label names"),
        ({"group_by": ["a", "a"]}, ("group_by",), "label 'a' is listed twice"),
        ({"group_interval": "0s"}, ("group_interval",), "duration must be positive"),
        ({"repeat_interval": "soon"}, ("repeat_interval",), "not a duration: 'soon'"),
        ({"matchers": ["a=1", "b=~("]}, ("matchers", 1), "invalid regular expression '('"),
        ({"match_re": {"a": "("}}, ("match_re", "a"), "invalid regular expression"),
        ({"recevier": "x"}, ("recevier",), "Extra inputs are not permitted"),
        ({"routes": [{"continue": "maybe"}]}, ("routes", 0, "continue"), "valid boolean"),
    ],
)
def test_route_validation(raw: dict[str, object], loc: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RouteConfig.model_validate(raw)
    errors = info.value.errors()
    assert [tuple(e["loc"]) for e in errors] == [loc]
    assert message in errors[0]["msg"]


def test_unknown_keys_get_a_suggestion() -> None:
    with pytest.raises(ValidationError) as info:
        RouteConfig.model_validate({"routes": [{"recevier": "x"}]})
    assert str(ConfigError.from_validation_error(info.value, "alerting.route")) == (
        "alerting.route.routes[0].recevier: unknown key (did you mean 'receiver'?)"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "receiver: the root route must have a receiver"),
        ({"receiver": "r", "matchers": ["a=1"]}, "matchers: the root route must not filter alerts"),
        ({"receiver": "r", "match": {"a": "1"}}, "match: the root route must not filter alerts"),
        ({"receiver": "r", "mute_time_intervals": ["x"]}, "mute_time_intervals: the root route cannot be muted"),
    ],
)
def test_root_route_rules(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RootRouteConfig.model_validate(raw)


def test_check_references_with_suggestions(root: Route) -> None:
    config = yaml.safe_load(ALERTMANAGER_STYLE)["route"]
    route = RouteConfig.model_validate(config)
    known_receivers = {
        "default-receiver", "database-pager", "frontend-pager", "dev-pager", "on-call-pager",
        "team-X-mails", "team-X-pager", "payments-pager", "payments-chat",
    }  # fmt: skip
    assert check_references(route, known_receivers, {"offhours", "holidays"}, {"payments"}) == []
    renamed = known_receivers - {"frontend-pager"} | {"front-end-pager"}
    assert check_references(route, renamed, {"offhours", "holiday"}, set()) == [
        ("route.routes[1].receiver", "unknown receiver 'frontend-pager' (did you mean 'front-end-pager'?)"),
        ("route.routes[2].mute_time_intervals[1]", "unknown time interval 'holidays' (did you mean 'holiday'?)"),
        ("route.routes[3].active_time_intervals[1]", "unknown time interval 'holidays' (did you mean 'holiday'?)"),
        (
            "route.routes[5].escalation_policy",
            "unknown escalation policy 'payments' (no escalation policies are defined)",
        ),
    ]


def test_check_references_messages() -> None:
    child = {"receiver": "zzz", "escalation_policy": "paymnts"}
    route = RouteConfig.model_validate({"receiver": "pagr", "routes": [child]})
    assert check_references(route, {"pager", "email"}, set(), {"payments"}) == [
        ("route.receiver", "unknown receiver 'pagr' (did you mean 'pager'?)"),
        ("route.routes[0].receiver", "unknown receiver 'zzz' (known: email, pager)"),
        ("route.routes[0].escalation_policy", "unknown escalation policy 'paymnts' (did you mean 'payments'?)"),
    ]
    # The root's own rules, for configs that hold the root as a plain RouteConfig.
    filtering_root = RouteConfig.model_validate({"matchers": ["a=1"]})
    assert check_references(filtering_root, set(), set(), set(), "alerting.route") == [
        (
            "alerting.route.receiver",
            "the root route must have a receiver (the default for alerts no child route takes)",
        ),
        ("alerting.route.matchers", "the root route must not filter alerts: it receives every alert"),
    ]


def test_receivers_used(root: Route) -> None:
    assert list(receivers_used(root.config))[:3] == ["default-receiver", "database-pager", "frontend-pager"]
