"""The Alertmanager notifier: the API v2 body against a recording server, then the real Alertmanager."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alerting.notifiers.alerts import STARTS_AT, deliver, failure, firing, group, resolved
from tests.alerting.notifiers.secrets import assert_no_secret
from tests.alerting.notifiers.servers import RecordingHttpServer, echo_request, free_port
from trm_otel.alerting.model import Alert
from trm_otel.alerting.notifiers.alertmanager import AlertmanagerNotifier
from trm_otel.alerting.receivers import AlertmanagerConfig

NOW = STARTS_AT + 120


def alertmanager(url: str, *, clock: Any = lambda: NOW, **config: Any) -> AlertmanagerNotifier:
    return AlertmanagerNotifier(AlertmanagerConfig.model_validate({"url": url, **config}), clock=clock)


def test_posts_api_v2_alerts(http_server: RecordingHttpServer) -> None:
    notifier = alertmanager(http_server.url + "/am/", resend_delay="30s")
    shop = firing("SlowCheckout", service="shop", summary="P95 high")

    deliver(notifier, group(shop, resolved("SlowCheckout", service="cart")))

    assert (notifier.kind, notifier.send_resolved, notifier.resend_interval_s) == ("alertmanager", True, 30.0)
    (request,) = http_server.requests
    assert request.path == "/am/api/v2/alerts"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == [
        {
            "labels": {"alertname": "SlowCheckout", "service_name": "shop"},
            "annotations": {"summary": "P95 high"},
            "startsAt": "2023-11-14T22:13:20.000Z",
            "endsAt": "2023-11-14T22:17:20.000Z",  # now (+2 min) + 4 x 30 s
            "generatorURL": "http://trm:8080/rules/SlowCheckout",
        },
        {
            "labels": {"alertname": "SlowCheckout", "service_name": "cart"},
            "annotations": {},
            "startsAt": "2023-11-14T22:13:20.000Z",
            "endsAt": "2023-11-14T22:18:20.000Z",  # when it resolved
            "generatorURL": "http://trm:8080/rules/SlowCheckout",
        },
    ]


def test_label_names_alertmanager_refuses_are_rewritten(http_server: RecordingHttpServer) -> None:
    alert = Alert.firing(
        {"alertname": "A", "service.name": "dotted", "service_name": "valid", "2xx": "d", "http-code": "h"},
        {"runbook.url": "r"},
        STARTS_AT,
    )

    deliver(alertmanager(http_server.url), group(alert))

    (sent,) = http_server.requests[0].json()
    assert sent["labels"] == {"alertname": "A", "service_name": "valid", "_2xx": "d", "http_code": "h"}
    assert sent["annotations"] == {"runbook_url": "r"}
    assert "generatorURL" not in sent  # empty: left out rather than sent as ""


def test_bad_request_is_final_and_unavailable_is_retryable(http_server: RecordingHttpServer) -> None:
    http_server.respond(400, b'"invalid label set"')
    http_server.respond(503, b"")

    bad, down = (failure(alertmanager(http_server.url), group(firing("A"))) for _ in range(2))

    assert not bad.retryable
    assert str(bad) == f'alertmanager {http_server.url}/…: HTTP 400 Bad Request: "invalid label set"'
    assert (down.retryable, str(down)) == (True, f"alertmanager {http_server.url}/…: HTTP 503 Service Unavailable")


def test_no_secret_leaks(http_server: RecordingHttpServer, refused_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = AlertmanagerConfig.model_validate(
        {"url": http_server.url, "http_config": {"basic_auth": {"username": "trm", "password": "AMPASSWORD"}}}
    )
    notifier = AlertmanagerNotifier(config)
    deliver(notifier, group(firing("Down")))
    http_server.respond(500, echo_request)
    errors = [failure(notifier, group(firing("Down")))]
    errors.append(failure(alertmanager(refused_url.replace("//", "//trm:AMPASSWORD@")), group(firing("Down"))))

    assert http_server.requests[0].basic_auth() == ("trm", "AMPASSWORD")
    assert notifier.describe() == f"alertmanager {http_server.url}"
    assert_no_secret("AMPASSWORD", config=config, notifier=notifier, caplog=caplog, errors=errors)


# --- the real Alertmanager ---------------------------------------------------------


def _binary() -> str:
    for candidate in ("/usr/bin/prometheus-alertmanager", shutil.which("alertmanager")):
        if candidate and Path(candidate).exists():
            return candidate
    message = "Alertmanager binary not found (apt install prometheus-alertmanager)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run the interop test")
    pytest.skip(message)


@pytest.fixture
def real_alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on a free loopback port, clustering off; yields its base URL."""
    binary = _binary()
    config = tmp_path / "alertmanager.yml"
    config.write_text("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
    port = free_port()
    log_file = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log_file.flush()
                pytest.fail("Alertmanager did not become ready:\n" + (tmp_path / "alertmanager.log").read_text())
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def _active(url: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v2/alerts", timeout=5)
    response.raise_for_status()
    return list(response.json())


def test_real_alertmanager_holds_the_alert_while_firing_and_drops_it_when_resolved(real_alertmanager: str) -> None:
    notifier = alertmanager(real_alertmanager, clock=time.time, resend_delay="1m")
    started = time.time() - 60
    alert = Alert.firing(
        {"alertname": "SlowCheckout", "service.name": "shop", "severity": "warning"},
        {"summary": "P95 high"},
        started,
        generator_url="http://trm:8080/rules/SlowCheckout",
    )

    deliver(notifier, group(alert))

    (held,) = _active(real_alertmanager)
    assert held["labels"] == {"alertname": "SlowCheckout", "service_name": "shop", "severity": "warning"}
    assert held["annotations"] == {"summary": "P95 high"}
    assert held["status"]["state"] == "active"
    assert held["generatorURL"] == "http://trm:8080/rules/SlowCheckout"
    assert held["receivers"] == [{"name": "blackhole"}]

    deliver(notifier, group(alert.resolved_at(time.time() - 1)))

    assert _active(real_alertmanager) == []
