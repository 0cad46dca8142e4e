"""Rule files: validated whole, located problems, and the daemon keeping its rules on a bad reload."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trm_otel.alerting.config import AlertingConfig
from trm_otel.alerting.rules import load_rule_files, parse_rule_group, reference_problems
from trm_otel.alerting.service import AlertingService
from trm_otel.errors import ConfigError
from trm_otel.processors.aggregation import LatencyAggregator
from trm_otel.processors.scalar_series import ScalarSeriesStore
from trm_otel.query import MemorySource

GOOD = """\
groups:
  - name: shop
    rules:
      - alert: SlowCheckout
        expr: p95(traces.span.metrics.duration{service.name="shop"}[5m]) > 300
        for: 2m
        labels: {severity: warning}
        annotations: {summary: "P95 is {{ $value }}"}
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_rule_files([write(tmp_path, text)])
    return [f"{where}: {message}".replace(str(tmp_path) + "/", "") for where, message in caught.value.problems]


def test_a_good_file_loads(tmp_path: Path) -> None:
    rules = load_rule_files([write(tmp_path, GOOD)])
    (group,) = rules.groups
    assert group.rules[0].for_ == 120.0 and str(group.rules[0].condition).endswith("> 300")


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        ("> 300", "rules.yaml:5:9: groups[0].rules[0].expr: 1:59: expected a comparison"),
        ("for: 2m", "rules.yaml:6:9: groups[0].rules[0].for: not a duration: '2 minutes'"),
        ("alert: SlowCheckout", "rules.yaml:4:9: groups[0].rules[0].alert: not a valid alert name: 'slow checkout'"),
        ("{{ $value }}", "rules.yaml:8:23: groups[0].rules[0].annotations.summary: "),
        ("labels: {severity: warning}", "rules.yaml:7:9: groups[0].rules[0].labels: label 'alertname' is set by trm-otel"),
    ],
)
def test_bad_rules_are_refused_with_their_path(tmp_path: Path, replace: str, expected: str) -> None:
    broken = {
        "> 300": "",
        "for: 2m": "for: 2 minutes",
        "alert: SlowCheckout": "alert: slow checkout",
        "{{ $value }}": "{{ $nope }}",
        "labels: {severity: warning}": "labels: {alertname: x}",
    }[replace]
    found = problems(tmp_path, GOOD.replace(replace, broken))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_recording_rules_are_refused_with_a_reason(tmp_path: Path) -> None:
    text = "groups: [{name: g, rules: [{record: x, expr: 'p95(a) > 1'}]}]\n"
    assert "recording rules (record:) are not supported" in problems(tmp_path, text)[0]


def test_unknown_receiver_is_named_with_a_suggestion(tmp_path: Path) -> None:
    rules = load_rule_files([write(tmp_path, GOOD.replace("for: 2m", "for: 2m\n        receiver: oncal"))])
    ((where, message),) = reference_problems(rules, ["oncall", "team"])
    assert where.endswith("groups[shop].rules[0].receiver") and message == "unknown receiver 'oncal' (did you mean 'oncall'?)"


def test_api_group_problems_name_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rule_group({"name": "g", "rules": [{"alert": "A", "expr": "p95(x) >"}]})
    assert caught.value.problems[0][0] == "request: rules[0].expr"


def service(tmp_path: Path, rule_file: Path) -> AlertingService:
    config = AlertingConfig.model_validate({"rule_files": [str(rule_file)]})
    aggregator = LatencyAggregator(window_s=1.0, history_s=600.0)
    return AlertingService(config, data_dir=tmp_path, source=MemorySource(aggregator, ScalarSeriesStore()))


def test_a_bad_reload_keeps_the_running_rules(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    alerting = service(tmp_path, path)
    path.write_text(GOOD.replace("> 300", "> "))
    with pytest.raises(ConfigError):
        alerting.reload()
    assert [r["name"] for g in alerting.rules_json() for r in g["rules"]] == ["SlowCheckout"]
    path.write_text(yaml.safe_dump({"groups": [{"name": "shop", "rules": [
        {"alert": "Other", "expr": "count(traces.span.calls[1m]) > 5"}]}]}))
    alerting.reload()
    assert [r["name"] for g in alerting.rules_json() for r in g["rules"]] == ["Other"]


def test_api_groups_cannot_shadow_file_groups_and_bad_ones_change_nothing(tmp_path: Path) -> None:
    alerting = service(tmp_path, write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="defined in"):
        alerting.put_rule_group({"name": "shop", "rules": []})
    alerting.put_rule_group({"name": "api", "rules": [{"alert": "A", "expr": "count(traces.span.calls[1m]) > 5"}]})
    with pytest.raises(ConfigError):
        alerting.put_rule_group({"name": "api", "rules": [{"alert": "A", "expr": "count(traces.span.calls[1m]) >"}]})
    assert sorted(g["name"] for g in alerting.rules_json()) == ["api", "shop"]
    assert alerting.rules_json()[1]["rules"][0]["query"] == "count(traces.span.calls[1m]) > 5"
