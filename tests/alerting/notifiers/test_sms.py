"""The SMS notifier against a real HTTP server playing Twilio's Messages API."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from tests.alerting.notifiers.alerts import deliver, failure, firing, group, resolved
from tests.alerting.notifiers.secrets import assert_no_secret
from tests.alerting.notifiers.servers import RecordingHttpServer, echo_request
from trm_otel.alerting.notifiers.sms import SmsNotifier
from trm_otel.alerting.receivers import SmsConfig

NUMBERS = ["+15550000001", "+15550000002", "+15550000003"]


def sms(url: str | None, **config: Any) -> SmsNotifier:
    values = {"account_sid": "AC123", "auth_token": "tok", "from": "+15559999999", "to": NUMBERS, **config}
    if url is not None:
        values["url"] = url
    return SmsNotifier(SmsConfig.model_validate(values))


def test_one_form_post_per_number(http_server: RecordingHttpServer) -> None:
    notifier = sms(http_server.url + "/2010-04-01/Accounts/AC123/Messages.json")

    deliver(notifier, group(firing("SlowCheckout", service="shop", summary="P95 high")))

    assert [r.form()["To"] for r in http_server.requests] == NUMBERS
    for request in http_server.requests:
        assert request.path == "/2010-04-01/Accounts/AC123/Messages.json"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert request.basic_auth() == ("AC123", "tok")
        form = request.form()
        assert form == {"From": "+15559999999", "To": form["To"], "Body": "[FIRING:1] SlowCheckout: P95 high"}


def test_default_url_is_twilios() -> None:
    notifier = sms(None, to=["+15550000001"])

    assert notifier.config.endpoint == "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
    assert notifier.describe() == "sms to 1 number via https://api.twilio.com/…"


def test_default_body_fits_one_segment(http_server: RecordingHttpServer) -> None:
    alerts = [firing("VeryLongAlertName" * 3, i=str(i), summary="x" * 80) for i in range(4)]

    deliver(sms(http_server.url, to=["+1"]), group(*alerts, folded=2))

    body = http_server.requests[0].form()["Body"]
    assert len(body) == 160 and body.endswith("...")
    assert body.startswith("[FIRING:4] VeryLongAlertNameVeryLongAlertNameVeryLongAlertName: xxx")


def test_text_template_overrides_and_may_be_longer(http_server: RecordingHttpServer) -> None:
    notifier = sms(http_server.url, to=["+1"], text="{{ status }} {{ common_labels.alertname }} {{ 'y' * 300 }}")

    deliver(notifier, group(firing("Down")))

    assert http_server.requests[0].form()["Body"] == "firing Down " + "y" * 300


def test_partial_failure_retries_only_the_numbers_not_reached(http_server: RecordingHttpServer) -> None:
    notifier = sms(http_server.url)
    notification = group(firing("Down"))
    http_server.respond(201)
    http_server.respond(500, b"oops")

    error = failure(notifier, notification)
    assert error.retryable
    assert str(error) == f"sms {http_server.url}: HTTP 500 Internal Server Error: oops (1 of 3 numbers failed)"

    deliver(notifier, notification)  # the dispatcher's retry
    assert [r.form()["To"] for r in http_server.requests] == NUMBERS + ["+15550000002"]

    deliver(notifier, notification)  # a later repeat goes to everyone again
    assert len(http_server.requests) == 7


def test_bad_request_is_final(http_server: RecordingHttpServer) -> None:
    http_server.always(400, b'{"code": 21211, "message": "Invalid To number"}')

    error = failure(sms(http_server.url), group(firing("Down")))

    assert not error.retryable
    assert str(error) == (
        f'sms {http_server.url}: HTTP 400 Bad Request: {{"code": 21211, "message": "Invalid To number"}}'
        " (3 of 3 numbers failed)"
    )


def test_resolved_is_not_sent_by_default(http_server: RecordingHttpServer) -> None:
    deliver(sms(http_server.url), group(resolved("Down")))
    deliver(sms(http_server.url, send_resolved=True, to=["+1"]), group(resolved("Down")))

    assert [r.form()["Body"] for r in http_server.requests] == ["[RESOLVED] Down"]


def test_no_secret_leaks(http_server: RecordingHttpServer, refused_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = SmsConfig.model_validate(
        {"url": http_server.url + "/x", "account_sid": "AC1", "auth_token": "SMSTOKEN", "from": "+1", "to": ["+2"]}
    )
    notifier = SmsNotifier(config)
    deliver(notifier, group(firing("Down")))
    http_server.respond(401, echo_request)
    errors = [failure(notifier, group(firing("Down")))]
    errors.append(failure(sms(refused_url, auth_token="SMSTOKEN"), group(firing("Down"))))

    encoded = base64.b64encode(b"AC1:SMSTOKEN").decode()
    assert http_server.requests[0].headers["authorization"] == f"Basic {encoded}"
    assert_no_secret(["SMSTOKEN", encoded], config=config, notifier=notifier, caplog=caplog, errors=errors)
