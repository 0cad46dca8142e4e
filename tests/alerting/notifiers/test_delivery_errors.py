"""One table for every HTTP integration: which failures are worth retrying, and what the message says."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.alerting.notifiers.alerts import deliver, failure, firing, group
from tests.alerting.notifiers.servers import RecordingHttpServer
from trm_otel.alerting.model import Notifier
from trm_otel.alerting.notifiers.alertmanager import AlertmanagerNotifier
from trm_otel.alerting.notifiers.http import classify_status
from trm_otel.alerting.notifiers.slack import SlackNotifier
from trm_otel.alerting.notifiers.sms import SmsNotifier
from trm_otel.alerting.notifiers.webhook import WebhookNotifier
from trm_otel.alerting.receivers import AlertmanagerConfig, SlackConfig, SmsConfig, WebhookConfig

MAKERS: dict[str, Callable[[str], Notifier]] = {
    "webhook": lambda url: WebhookNotifier(WebhookConfig(url=url + "/hook")),  # type: ignore[arg-type]
    "slack": lambda url: SlackNotifier(SlackConfig(api_url=url + "/services/x")),  # type: ignore[arg-type]
    "sms": lambda url: SmsNotifier(
        SmsConfig.model_validate(
            {"url": url + "/sms", "account_sid": "A", "auth_token": "t", "from": "+1", "to": ["+2"]}
        )
    ),
    "alertmanager": lambda url: AlertmanagerNotifier(AlertmanagerConfig(url=url)),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("kind", MAKERS)
@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (429, True), (400, False), (401, False), (403, False), (301, False)],
)
def test_status(http_server: RecordingHttpServer, kind: str, status: int, retryable: bool) -> None:
    http_server.always(status, b"nope")
    notifier = MAKERS[kind](http_server.url)

    error = failure(notifier, group(firing("Down")))

    assert error.retryable is retryable
    assert str(error).startswith(f"{kind} {http_server.url}/…: HTTP {status} ")
    assert str(error).endswith(": nope")


@pytest.mark.parametrize("kind", MAKERS)
def test_refused_connection(refused_url: str, kind: str) -> None:
    error = failure(MAKERS[kind](refused_url), group(firing("Down")))

    assert error.retryable
    assert str(error) == f"{kind} {refused_url}/…: connection failed: Connection refused"


@pytest.mark.parametrize("kind", MAKERS)
def test_2xx_is_success(http_server: RecordingHttpServer, kind: str) -> None:
    http_server.always(201 if kind == "sms" else 200, b"ok")

    deliver(MAKERS[kind](http_server.url), group(firing("Down")))

    assert len(http_server.requests) == 1


def test_classify_status() -> None:
    assert [s for s in range(400, 600) if classify_status(s)] == [429, *range(500, 600)]
