"""The alerting section's cross-references and the outbound allow-list, as the daemon config reports them."""

from __future__ import annotations

import pytest

from trm_otel.alerting.config import host_allowed
from trm_otel.config import parse_config
from trm_otel.errors import ConfigError


def problems(alerting: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"alerting": alerting}, source="")
    return [f"{path}: {message}" for path, message in caught.value.problems]


def test_unknown_names_are_reported_with_their_path() -> None:
    found = problems({
        "route": {"receiver": "team", "routes": [{"receiver": "pagr", "escalation_policy": "nope"}]},
        "receivers": [{"name": "team"}, {"name": "pager"}],
        "escalation_policies": [{"name": "p", "steps": [{"after": "5m", "receivers": ["boss"]}]}],
    })
    assert "alerting.route.routes[0].receiver: unknown receiver 'pagr' (did you mean 'pager'?)" in found
    assert any(p.startswith("alerting.route.routes[0].escalation_policy: unknown escalation policy 'nope'")
               for p in found)
    assert any(p.startswith("alerting.escalation_policies[0].steps[0].receivers: unknown receiver 'boss'")
               for p in found)


def test_outbound_allowlist_is_off_by_default_and_checked_when_set() -> None:
    receivers = [{"name": "a", "webhook_configs": [{"url": "http://evil.example/x?token=s3cret"}],
                  "slack_configs": [{"api_url": "https://hooks.slack.com/services/T/B/X"}]}]
    parse_config({"alerting": {"receivers": receivers}})
    found = problems({"receivers": receivers, "outbound_allowlist": ["hooks.slack.com", "10.0.0.0/8"]})
    assert found == ["alerting.receivers[0].webhook_configs[0].url: host 'evil.example' is not in "
                     "alerting.outbound_allowlist"]
    assert "s3cret" not in str(found)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("hooks.slack.com", True), ("a.corp.example", True), ("corp.example.evil", False), ("10.9.8.7", True),
     ("11.0.0.1", False), ("HOOKS.SLACK.COM", True)],
)
def test_host_allowed(host: str, allowed: bool) -> None:
    assert host_allowed(host, ("hooks.slack.com", "*.corp.example", "10.0.0.0/8")) is allowed
