"""The webhook notifier against a real HTTP server: Alertmanager's payload, auth, TLS, failures, secrets."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest

from tests.alerting.notifiers.alerts import STARTS_AT, deliver, failure, firing, group, resolved
from tests.alerting.notifiers.secrets import assert_no_secret
from tests.alerting.notifiers.servers import RecordingHttpServer, TlsFiles, echo_request
from trm_otel.alerting.model import ZERO_TIME, rfc3339
from trm_otel.alerting.notifiers.webhook import WebhookNotifier
from trm_otel.alerting.receivers import ReceiverConfig, WebhookConfig, build_notifiers
from trm_otel.errors import ConfigError

ALERTMANAGER_KEYS = {
    "version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
    "commonLabels", "commonAnnotations", "externalURL", "alerts",
}
ALERT_KEYS = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}


def webhook(url: str, **config: Any) -> WebhookNotifier:
    return WebhookNotifier(WebhookConfig.model_validate({"url": url, **config}), external_url="http://fallback")


def test_payload_is_alertmanagers_field_by_field(http_server: RecordingHttpServer) -> None:
    shop = firing("SlowCheckout", service="shop", severity="warning", summary="P95 high", value=1.5)
    cart = resolved("SlowCheckout", service="cart", severity="warning")
    notification = group(shop, cart)

    deliver(webhook(http_server.url + "/hook"), notification)

    (request,) = http_server.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("trm-otel/")
    body = request.json()
    assert set(body) == ALERTMANAGER_KEYS
    assert body["version"] == "4"
    assert body["groupKey"] == '{}:{alertname="SlowCheckout"}'
    assert body["truncatedAlerts"] == 0
    assert body["status"] == "firing"
    assert body["receiver"] == "ops"
    assert body["groupLabels"] == {"alertname": "SlowCheckout"}
    assert body["commonLabels"] == {"alertname": "SlowCheckout", "severity": "warning"}
    assert body["commonAnnotations"] == {}
    assert body["externalURL"] == "http://trm:8080"
    first, second = body["alerts"]
    assert set(first) == ALERT_KEYS and set(second) == ALERT_KEYS
    assert first == {
        "status": "firing",
        "labels": {"alertname": "SlowCheckout", "service.name": "shop", "severity": "warning"},
        "annotations": {"summary": "P95 high"},
        "startsAt": "2023-11-14T22:13:20.000Z",
        "endsAt": ZERO_TIME,
        "generatorURL": "http://trm:8080/rules/SlowCheckout",
        "fingerprint": shop.fingerprint,
    }
    assert second["status"] == "resolved"
    assert second["endsAt"] == rfc3339(STARTS_AT + 300) == "2023-11-14T22:18:20.000Z"
    assert second["fingerprint"] == cart.fingerprint


def test_external_url_falls_back_to_the_notifiers(http_server: RecordingHttpServer) -> None:
    deliver(webhook(http_server.url), replace(group(firing("Down")), external_url=""))

    assert http_server.requests[0].json()["externalURL"] == "http://fallback"


def test_max_alerts_keeps_the_first_and_counts_the_rest(http_server: RecordingHttpServer) -> None:
    alerts = [firing("Down", instance=str(i)) for i in range(5)]

    deliver(webhook(http_server.url, max_alerts=2), group(*alerts))

    body = http_server.requests[0].json()
    assert [a["labels"]["instance"] for a in body["alerts"]] == ["0", "1"]
    assert body["truncatedAlerts"] == 3


def test_resolved_is_sent_by_default(http_server: RecordingHttpServer) -> None:
    deliver(webhook(http_server.url), group(resolved("Down")))

    body = http_server.requests[0].json()
    assert body["status"] == "resolved"
    assert body["alerts"][0]["status"] == "resolved"


def test_send_resolved_false_sends_only_firing_alerts(http_server: RecordingHttpServer) -> None:
    notifier = webhook(http_server.url, send_resolved=False)

    deliver(notifier, group(resolved("Down", instance="a")))
    assert http_server.requests == []

    deliver(notifier, group(firing("Down", instance="b"), resolved("Down", instance="a")))
    (request,) = http_server.requests
    assert [a["labels"]["instance"] for a in request.json()["alerts"]] == ["b"]


def test_bearer_authorization(http_server: RecordingHttpServer) -> None:
    config = {"authorization": {"credentials": "tok-123"}}

    deliver(webhook(http_server.url, http_config=config), group(firing("Down")))

    assert http_server.requests[0].headers["authorization"] == "Bearer tok-123"


def test_basic_auth_from_config_and_from_userinfo_config_first(http_server: RecordingHttpServer) -> None:
    basic = {"basic_auth": {"username": "u", "password": "p"}}
    deliver(webhook(http_server.url, http_config=basic), group(firing("A")))
    deliver(webhook(http_server.url.replace("http://", "http://bob:pw%21@")), group(firing("B")))
    deliver(webhook(http_server.url.replace("http://", "http://bob:pw@"), http_config=basic), group(firing("C")))

    assert [r.basic_auth() for r in http_server.requests] == [("u", "p"), ("bob", "pw!"), ("u", "p")]
    assert all("bob" not in r.path for r in http_server.requests)


def test_https_with_ca_file(https_server: RecordingHttpServer, tls_files: TlsFiles) -> None:
    trusted = webhook(https_server.url, http_config={"tls_config": {"ca_file": str(tls_files.ca_file)}})
    deliver(trusted, group(firing("Down")))
    assert len(https_server.requests) == 1

    error = failure(webhook(https_server.url), group(firing("Down")))
    assert not error.retryable
    assert "TLS certificate not trusted" in str(error)

    skipping = webhook(https_server.url, http_config={"tls_config": {"insecure_skip_verify": True}})
    deliver(skipping, group(firing("Down")))
    assert len(https_server.requests) == 2


@pytest.mark.parametrize(
    ("status", "retryable", "words"),
    [
        (500, True, "HTTP 500 Internal Server Error: boom"),
        (503, True, "HTTP 503 Service Unavailable: boom"),
        (429, True, "HTTP 429 Too Many Requests: boom"),
        (400, False, "HTTP 400 Bad Request: boom"),
        (404, False, "HTTP 404 Not Found: boom"),
    ],
)
def test_status_classification(http_server: RecordingHttpServer, status: int, retryable: bool, words: str) -> None:
    http_server.respond(status, b"boom")

    error = failure(webhook(http_server.url + "/hook"), group(firing("Down")))

    assert error.retryable is retryable
    assert str(error) == f"webhook {http_server.url}/…: {words}"


def test_refused_connection_is_retryable(refused_url: str) -> None:
    error = failure(webhook(refused_url), group(firing("Down")))

    assert error.retryable
    assert str(error) == f"webhook {refused_url}: connection failed: Connection refused"


def test_timeout_is_retryable(http_server: RecordingHttpServer) -> None:
    http_server.respond(200, b"late", delay_s=1.0)

    error = failure(webhook(http_server.url, timeout="200ms"), group(firing("Down")))

    assert error.retryable
    assert str(error) == f"webhook {http_server.url}: no answer within 0.2s"


def test_unreadable_ca_file_is_a_config_error_at_its_key(tmp_path: Any) -> None:
    receiver = ReceiverConfig.model_validate(
        {
            "name": "ops",
            "webhook_configs": [
                {"url": "http://ok.example"},
                {"url": "https://x.example", "http_config": {"tls_config": {"ca_file": str(tmp_path / "none.pem")}}},
            ],
        }
    )

    with pytest.raises(ConfigError) as caught:
        build_notifiers(receiver, external_url="", key_path="alerting.receivers[0]")

    ((path, message),) = caught.value.problems
    assert path == "alerting.receivers[0].webhook_configs[1].http_config.tls_config.ca_file"
    assert message.startswith("cannot load ") and "No such file or directory" in message


def test_no_secret_leaks(http_server: RecordingHttpServer, refused_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = ("PATHTOKEN", "QUERYTOKEN", "USERPW", "BEARERTOKEN")
    url = http_server.url.replace("http://", "http://bob:USERPW@") + "/hook/PATHTOKEN?token=QUERYTOKEN"
    auth = {"authorization": {"credentials": "BEARERTOKEN"}}
    config = WebhookConfig.model_validate({"url": url, "http_config": auth})
    notifier = WebhookNotifier(config, external_url="")
    deliver(notifier, group(firing("Down")))
    http_server.respond(500, echo_request)
    errors = [failure(notifier, group(firing("Down")))]
    refused = WebhookConfig.model_validate({"url": refused_url + "/x/PATHTOKEN?token=QUERYTOKEN"})
    errors.append(failure(WebhookNotifier(refused), group(firing("Down"))))

    assert http_server.requests[0].path == "/hook/PATHTOKEN?token=QUERYTOKEN"
    assert "<redacted>" in str(errors[0])
    assert_no_secret(secrets, config=config, notifier=notifier, caplog=caplog, errors=errors)
