"""Inhibition rules with Alertmanager's semantics."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from trm_otel.alerting import inhibit as module
from trm_otel.alerting.inhibit import InhibitRule, Inhibitor
from trm_otel.alerting.matchers import Matcher
from trm_otel.alerting.model import Alert, fingerprint


def rule(**raw: Any) -> InhibitRule:
    return InhibitRule.model_validate(raw)


def firing(**labels: str) -> Alert:
    return Alert.firing(labels, {}, 1000.0)


CRITICAL_SILENCES_WARNING = rule(
    source_matchers=['severity="critical"'], target_matchers=['severity="warning"'], equal=["alertname", "cluster"]
)


def test_exported_names() -> None:
    assert sorted(module.__all__) == ["InhibitRule", "Inhibitor"]


def test_source_inhibits_target_with_equal_labels() -> None:
    source = firing(alertname="HighLatency", cluster="eu", severity="critical")
    inhibitor = Inhibitor([CRITICAL_SILENCES_WARNING])
    target = {"alertname": "HighLatency", "cluster": "eu", "severity": "warning"}
    assert inhibitor.inhibited_by(target, [source]) == source.fingerprint
    assert inhibitor.inhibited_by({**target, "cluster": "us"}, [source]) is None  # equal label differs
    assert inhibitor.inhibited_by({**target, "severity": "info"}, [source]) is None  # not a target
    assert inhibitor.inhibited_by(target, []) is None


def test_equal_labels_missing_on_both_sides_count_as_equal() -> None:
    inhibitor = Inhibitor([CRITICAL_SILENCES_WARNING])
    source = firing(alertname="HighLatency", severity="critical")  # no cluster
    assert inhibitor.inhibited_by({"alertname": "HighLatency", "severity": "warning"}, [source]) == source.fingerprint
    # Missing on one side only: "" != "eu".
    one_sided = {"alertname": "HighLatency", "severity": "warning", "cluster": "eu"}
    assert inhibitor.inhibited_by(one_sided, [source]) is None


def test_resolved_sources_do_not_inhibit() -> None:
    source = firing(alertname="A", severity="critical").resolved_at(2000.0)
    inhibitor = Inhibitor([CRITICAL_SILENCES_WARNING])
    assert inhibitor.inhibited_by({"alertname": "A", "severity": "warning"}, [source]) is None


def test_an_alert_does_not_inhibit_itself() -> None:
    # Source and target both select every alert of the service.
    broad = rule(source_matchers=['service.name="shop"'], target_matchers=['service.name="shop"'])
    alert = firing(alertname="A", **{"service.name": "shop"})
    assert Inhibitor([broad]).inhibited_by(alert.labels, [alert]) is None


def test_alerts_matching_both_sides_do_not_inhibit_each_other() -> None:
    # Both alerts are sources and targets: neither may hide the other, or both would vanish.
    broad = rule(source_matchers=['service.name="shop"'], target_matchers=['service.name="shop"'])
    one = firing(alertname="A", **{"service.name": "shop"})
    two = firing(alertname="B", **{"service.name": "shop"})
    inhibitor = Inhibitor([broad])
    assert inhibitor.inhibited_by(one.labels, [one, two]) is None
    assert inhibitor.inhibited_by(two.labels, [one, two]) is None
    # A target that is not itself a source is still inhibited by them.
    narrow = rule(source_matchers=['service.name="shop"', "tier=edge"], target_matchers=['service.name="shop"'])
    edge = firing(alertname="EdgeDown", tier="edge", **{"service.name": "shop"})
    assert Inhibitor([narrow]).inhibited_by(one.labels, [edge, one]) == edge.fingerprint


def test_legacy_match_keys_add_to_the_matchers() -> None:
    legacy = rule(
        source_match={"severity": "critical"}, target_match_re={"severity": "warning|info"}, equal=["alertname"]
    )
    assert legacy.sources == (Matcher("severity", "=", "critical"),)
    assert legacy.targets == (Matcher("severity", "=~", "warning|info"),)
    source = firing(alertname="A", severity="critical")
    assert Inhibitor([legacy]).inhibited_by({"alertname": "A", "severity": "info"}, [source]) == source.fingerprint
    combined = rule(source_match={"severity": "critical"}, source_matchers=["team=db"])
    assert [str(m) for m in combined.sources] == ['severity="critical"', 'team="db"']


def test_first_rule_then_first_firing_alert_wins() -> None:
    by_team = rule(source_matchers=["kind=outage"], target_matchers=["kind=symptom"], equal=["team"])
    by_site = rule(source_matchers=["kind=maintenance"], target_matchers=["kind=symptom"], equal=["site"])
    outage_a = firing(alertname="Outage", kind="outage", team="db", site="x")
    outage_b = firing(alertname="Outage2", kind="outage", team="db", site="y")
    maintenance = firing(alertname="Maint", kind="maintenance", site="x")
    target = {"alertname": "Slow", "kind": "symptom", "team": "db", "site": "x"}
    firing_now = [maintenance, outage_b, outage_a]
    assert Inhibitor([by_team, by_site]).inhibited_by(target, firing_now) == outage_b.fingerprint
    assert Inhibitor([by_site, by_team]).inhibited_by(target, firing_now) == maintenance.fingerprint


def test_firing_may_be_a_one_shot_iterable() -> None:
    source = firing(alertname="A", severity="critical")
    two_rules = Inhibitor([rule(target_matchers=["nope=1"]), CRITICAL_SILENCES_WARNING])
    assert two_rules.inhibited_by({"alertname": "A", "severity": "warning"}, iter([source])) == source.fingerprint
    assert fingerprint({"alertname": "A", "severity": "critical"}) == source.fingerprint


def test_rule_validation_points_at_the_entry() -> None:
    with pytest.raises(ValidationError) as info:
        InhibitRule.model_validate({"source_matchers": ['a="1"', "b=~["], "equals": ["x"]})
    locs = [tuple(e["loc"]) for e in info.value.errors()]
    assert locs == [("source_matchers", 1), ("equals",)]
    assert "invalid regular expression '['" in info.value.errors()[0]["msg"]
