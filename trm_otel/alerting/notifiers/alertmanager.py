"""``alertmanager_configs``: hand alerts to a real Alertmanager, as Prometheus does.

    >>> from trm_otel.alerting.model import Alert
    >>> alertmanager_alerts([Alert.firing({"alertname": "Down", "service.name": "shop"}, {}, 0.0)], now=0.0,
    ...                     resend_delay_s=60.0)[0]["labels"]
    {'alertname': 'Down', 'service_name': 'shop'}

``POST {url}/api/v2/alerts`` with a JSON list of ``{labels, annotations,
startsAt, endsAt, generatorURL}``. A firing alert is sent with ``endsAt``
= now + 4 × ``resend_delay`` and must be re-sent every ``resend_delay``
while it fires (:attr:`AlertmanagerNotifier.resend_interval_s` tells the
dispatcher so): if trm-otel stops, Alertmanager resolves the alert itself
instead of keeping it forever. A resolved alert is sent with its real end.

Alertmanager (before 0.28) accepts only Prometheus label names
(``[a-zA-Z_][a-zA-Z0-9_]*``) and refuses the whole batch otherwise, so
``service.name`` is sent as ``service_name``; when both exist, the one
already valid wins. Annotation names are treated the same way. Grouping,
silences and routing are then Alertmanager's, and ``send_resolved`` is
always true: Alertmanager must hear that an alert ended.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from trm_otel.alerting.model import Alert, Notification, rfc3339
from trm_otel.alerting.notifiers.http import HttpTarget, log, redact_url

if TYPE_CHECKING:
    from trm_otel.alerting.receivers import AlertmanagerConfig

__all__ = ["AlertmanagerNotifier", "alertmanager_alerts", "prometheus_name"]

_INVALID = re.compile(r"[^a-zA-Z0-9_]")
#: Prometheus' factor: an alert sent every resend_delay stays active for 4 of them.
RESEND_FACTOR = 4


def prometheus_name(name: str) -> str:
    """``service.name`` -> ``service_name``: a name Alertmanager's API accepts."""
    fixed = _INVALID.sub("_", name)
    return f"_{fixed}" if not fixed or fixed[0].isdigit() else fixed


def _names(mapping: Mapping[str, str]) -> dict[str, str]:
    valid = {k: str(v) for k, v in mapping.items() if prometheus_name(k) == k}
    for key, value in mapping.items():
        valid.setdefault(prometheus_name(key), str(value))
    return valid


def alertmanager_alerts(alerts: Iterable[Alert], *, now: float, resend_delay_s: float) -> list[dict[str, Any]]:
    """The ``POST /api/v2/alerts`` body for ``alerts`` at time ``now``."""
    out: list[dict[str, Any]] = []
    for alert in alerts:
        ends_at = alert.ends_at if alert.ends_at is not None else now + RESEND_FACTOR * resend_delay_s
        item: dict[str, Any] = {
            "labels": _names(alert.labels),
            "annotations": _names(alert.annotations),
            "startsAt": rfc3339(alert.starts_at),
            "endsAt": rfc3339(ends_at),
        }
        if alert.generator_url:
            item["generatorURL"] = alert.generator_url
        out.append(item)
    return out


class AlertmanagerNotifier:
    """Posts every alert of a notification to an Alertmanager; re-sent while firing."""

    kind = "alertmanager"
    send_resolved = True

    def __init__(
        self, config: AlertmanagerConfig, *, external_url: str = "", clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.external_url = external_url
        #: The dispatcher re-sends firing groups this often (Prometheus' ``resend_delay``).
        self.resend_interval_s = config.resend_delay
        self._clock = clock
        base = config.url.get_secret_value().rstrip("/")
        self._target = HttpTarget(
            self.kind, f"{base}/api/v2/alerts", http_config=config.http_config, timeout_s=config.timeout
        )
        self._where = redact_url(base)

    def describe(self) -> str:
        return f"{self.kind} {self._where}"

    async def notify(self, notification: Notification) -> None:
        body = alertmanager_alerts(notification.alerts, now=self._clock(), resend_delay_s=self.resend_interval_s)
        if not body:
            return
        await self._target.post(json_body=body)
        log.debug("%s: posted %d alerts of group %s", self.describe(), len(body), notification.group_key)
