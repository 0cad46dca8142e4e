"""``webhook_configs``: Alertmanager's webhook, byte for byte the same JSON.

    >>> from trm_otel.alerting.model import Alert, Notification
    >>> n = Notification("ops", "{}:{}", {}, (Alert.firing({"alertname": "Down"}, {}, 0.0),))
    >>> body = webhook_payload(n, external_url="http://trm:8080")
    >>> body["version"], body["status"], body["alerts"][0]["endsAt"]
    ('4', 'firing', '0001-01-01T00:00:00Z')

Keeping the payload exactly Alertmanager's means every existing webhook
consumer (alertmanager-discord, PagerDuty's Alertmanager integration,
home-grown bots) works unchanged; trm-otel's extras (``folded``,
``escalation_step``, ``value``) are left out for that reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trm_otel.alerting.model import Alert, Notification, rfc3339
from trm_otel.alerting.notifiers.http import HttpTarget, deliverable, log

if TYPE_CHECKING:
    from trm_otel.alerting.receivers import WebhookConfig

__all__ = ["WebhookNotifier", "webhook_payload"]


def _alert(alert: Alert) -> dict[str, Any]:
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(alert.ends_at),
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }


def webhook_payload(notification: Notification, *, external_url: str = "", max_alerts: int = 0) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4); ``max_alerts`` > 0 keeps the first N alerts."""
    alerts = notification.alerts
    kept = alerts[:max_alerts] if max_alerts > 0 else alerts
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": len(alerts) - len(kept),
        "status": notification.status,
        "receiver": notification.receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": notification.common_labels,
        "commonAnnotations": notification.common_annotations,
        "externalURL": notification.external_url or external_url,
        "alerts": [_alert(a) for a in kept],
    }


class WebhookNotifier:
    """POSTs :func:`webhook_payload` to the configured URL."""

    kind = "webhook"

    def __init__(self, config: WebhookConfig, *, external_url: str = "") -> None:
        self.config = config
        self.send_resolved = config.send_resolved
        self.external_url = external_url
        self._target = HttpTarget(
            self.kind, config.url.get_secret_value(), http_config=config.http_config, timeout_s=config.timeout
        )

    def describe(self) -> str:
        return f"{self.kind} {self._target.where}"

    async def notify(self, notification: Notification) -> None:
        sendable = deliverable(notification, self.send_resolved)
        if sendable is None:
            return
        body = webhook_payload(sendable, external_url=self.external_url, max_alerts=self.config.max_alerts)
        await self._target.post(json_body=body)
        log.debug("%s: delivered %d alerts of group %s", self.describe(), len(body["alerts"]), sendable.group_key)
