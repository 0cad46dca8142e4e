"""Receiver config: Alertmanager's keys and defaults, key-path errors, secrets kept secret, the factory."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
import yaml

from trm_otel.alerting.receivers import ReceiverConfig, SecretUrl, build_notifiers
from trm_otel.errors import ConfigError

#: A receiver as written for Alertmanager (keys from its documentation), plus trm-otel's own.
PASTED = """
name: ops
webhook_configs:
  - url: https://hooks.example.com/alert?token=WEBHOOKTOKEN
    send_resolved: false
    max_alerts: 10
    http_config:
      authorization:
        credentials: BEARERTOKEN
      tls_config:
        insecure_skip_verify: true
email_configs:
  - to: ops@example.com
    from: alertmanager@example.com
    smarthost: smtp.example.com:587
    auth_username: alertmanager
    auth_password: MAILPASSWORD
    headers:
      Subject: '{{ common_labels.alertname }}'
slack_configs:
  - api_url: https://hooks.slack.com/services/T000/B000/SLACKTOKEN
    channel: '#ops'
    title: '{{ status }}'
sms_configs:
  - account_sid: AC123
    auth_token: SMSTOKEN
    from: '+15550000000'
    to: ['+15551111111']
alertmanager_configs:
  - url: http://alertmanager:9093
rate_limit:
  max_notifications: 5
  per: 1h
"""
SECRETS = ("WEBHOOKTOKEN", "BEARERTOKEN", "MAILPASSWORD", "SLACKTOKEN", "SMSTOKEN")


def load(data: dict[str, Any]) -> ReceiverConfig:
    try:
        return ReceiverConfig.model_validate(data)
    except pydantic.ValidationError as err:
        raise ConfigError.from_validation_error(err, "receivers[0]", ReceiverConfig) from None


def problems(data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    with pytest.raises(ConfigError) as caught:
        load(data)
    return caught.value.problems


def test_an_alertmanager_receiver_pastes_in() -> None:
    receiver = load(yaml.safe_load(PASTED))

    webhook, email, slack = receiver.webhook_configs[0], receiver.email_configs[0], receiver.slack_configs[0]
    assert (webhook.send_resolved, webhook.max_alerts) == (False, 10)
    assert webhook.http_config.authorization.type == "Bearer"  # type: ignore[union-attr]
    assert webhook.http_config.tls_config.insecure_skip_verify
    assert (email.from_, email.require_tls, email.send_resolved, email.hello) == (
        "alertmanager@example.com", True, False, "localhost",
    )
    assert (slack.channel, slack.send_resolved) == ("#ops", False)
    assert receiver.alertmanager_configs[0].resend_delay == 60.0
    assert (receiver.rate_limit.max_notifications, receiver.rate_limit.per) == (5, 3600.0)  # type: ignore[union-attr]


def test_secrets_never_print() -> None:
    receiver = load(yaml.safe_load(PASTED))

    shown = [repr(receiver), str(receiver), repr(receiver.model_dump()), receiver.model_dump_json()]
    assert [s for s in SECRETS for text in shown if s in text] == []
    assert receiver.webhook_configs[0].url.get_secret_value().endswith("token=WEBHOOKTOKEN")
    assert receiver.model_dump(mode="json")["slack_configs"][0]["api_url"] == "https://hooks.slack.com/…"
    assert repr(receiver.alertmanager_configs[0].url) == "SecretUrl('http://alertmanager:9093')"


def test_a_bad_url_error_does_not_repeat_the_url() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        ReceiverConfig.model_validate({"name": "x", "webhook_configs": [{"url": "ftp://user:URLSECRET@host/x"}]})

    assert "URLSECRET" not in str(caught.value)
    assert "must be an http:// or https:// URL with a host" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"webhook_configs": [{"url": "http://a", "sendresolved": True}]},
            ("receivers[0].webhook_configs[0].sendresolved", "unknown key (did you mean 'send_resolved'?)"),
        ),
        (
            {"webhook_configs": [{"url": "mailto:ops@example.com"}]},
            ("receivers[0].webhook_configs[0].url", "must be an http:// or https:// URL with a host"),
        ),
        (
            {"webhook_configs": [{"url": "http://a", "max_alerts": -1}]},
            ("receivers[0].webhook_configs[0].max_alerts", "Input should be greater than or equal to 0"),
        ),
        (
            {"slack_configs": [{"api_url": "https://hooks.slack.com/x", "title": "{{ status "}]},
            ("receivers[0].slack_configs[0].title", "template does not compile: unexpected end of template, "
             "expected 'end of print statement'. (line 1)"),
        ),
        (
            {"email_configs": [{"to": "a@b", "from": "c@d", "smarthost": "smtp.example.com"}]},
            ("receivers[0].email_configs[0].smarthost", "must be host:port (e.g. smtp.example.com:587)"),
        ),
        (
            {"email_configs": [{"to": "nobody", "from": "c@d", "smarthost": "h:25"}]},
            ("receivers[0].email_configs[0].to",
             "no email address found (e.g. 'ops@example.com, Oncall <oncall@example.com>')"),
        ),
        (
            {"email_configs": [{"to": "a@b", "from": "c@d", "smarthost": "h:25", "html": "{% if %}"}]},
            ("receivers[0].email_configs[0].html", "template does not compile: Expected an expression, got 'end of "
             "statement block' (line 1)"),
        ),
        (
            {"email_configs": [{"to": "a@b", "from": "c@d", "smarthost": "h:25", "headers": {"Subject": "{{"}}]},
            ("receivers[0].email_configs[0].headers.Subject", "template does not compile: unexpected 'end of "
             "template' (line 1)"),
        ),
        (
            {"sms_configs": [{"account_sid": "AC1", "auth_token": "t", "from": "+1", "to": []}]},
            ("receivers[0].sms_configs[0].to", "Tuple should have at least 1 item after validation, not 0"),
        ),
        (
            {"webhook_configs": [{"url": "http://a", "http_config": {
                "authorization": {"credentials": "x"}, "basic_auth": {"username": "u"}}}]},
            ("receivers[0].webhook_configs[0].http_config", "authorization and basic_auth are mutually exclusive "
             "(choose one)"),
        ),
        (
            {"alertmanager_configs": [{"url": "http://am", "resend_delay": "0s"}]},
            ("receivers[0].alertmanager_configs[0].resend_delay", "duration must be positive and finite, got '0s'"),
        ),
        (
            {"rate_limit": {"max_notifications": 0, "per": "1h"}},
            ("receivers[0].rate_limit.max_notifications", "Input should be greater than or equal to 1"),
        ),
    ],
)
def test_errors_name_the_key(data: dict[str, Any], expected: tuple[str, str]) -> None:
    assert problems({"name": "ops", **data}) == (expected,)


def test_build_notifiers_one_per_integration_in_order() -> None:
    receiver = load(yaml.safe_load(PASTED))

    notifiers = build_notifiers(receiver, external_url="http://trm:8080")

    assert [n.kind for n in notifiers] == ["webhook", "email", "slack", "sms", "alertmanager"]
    assert [n.send_resolved for n in notifiers] == [False, False, False, False, True]
    assert [n.describe() for n in notifiers] == [
        "webhook https://hooks.example.com/…",
        "email to ops@example.com via smtp.example.com:587",
        "slack #ops https://hooks.slack.com/…",
        "sms to 1 number via https://api.twilio.com/…",
        "alertmanager http://alertmanager:9093",
    ]
    assert notifiers[-1].resend_interval_s == 60.0  # type: ignore[attr-defined]
    assert build_notifiers(ReceiverConfig(name="silent"), external_url="") == []


def test_secret_url_shows_scheme_host_and_port_only() -> None:
    assert str(SecretUrl("https://u:p@[::1]:8443/a?b=c")) == "https://[::1]:8443/…"
    assert str(SecretUrl("http://example.com")) == "http://example.com"
    assert str(SecretUrl("http://example.com/")) == "http://example.com"
    assert str(SecretUrl("http://example.com/?x=1")) == "http://example.com/…"
