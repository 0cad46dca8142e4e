"""What alerting passes between its stages: alerts, notifications, delivery errors.

    >>> a = Alert.firing({"alertname": "SlowCheckout", "service.name": "shop"}, {"summary": "P95 high"}, 1700000000.0)
    >>> a.fingerprint == fingerprint({"service.name": "shop", "alertname": "SlowCheckout"}), a.status
    (True, 'firing')
    >>> a.resolved_at(1700000060.0).status
    'resolved'

An alert is identified by its label set alone (its *fingerprint*), as in
Alertmanager: the same labels from another evaluation are the same alert,
whatever the value or annotations. Times are Unix seconds (floats); the
RFC 3339 strings of payloads are made by :func:`rfc3339` at the edge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Literal, Protocol

__all__ = [
    "ZERO_TIME",
    "Alert",
    "DeliveryError",
    "Notification",
    "Notifier",
    "fingerprint",
    "rfc3339",
]

#: How Alertmanager writes "no end yet" in ``endsAt``.
ZERO_TIME = "0001-01-01T00:00:00Z"

Status = Literal["firing", "resolved"]


def fingerprint(labels: Mapping[str, str]) -> str:
    """16 hex digits identifying a label set, independent of order."""
    digest = hashlib.sha256()
    for key in sorted(labels):
        digest.update(key.encode())
        digest.update(b"\xff")
        digest.update(str(labels[key]).encode())
        digest.update(b"\xfe")
    return digest.hexdigest()[:16]


def rfc3339(time_s: float | None) -> str:
    """``2026-11-30T04:20:00.123Z``; ``None`` is Alertmanager's zero time."""
    if time_s is None:
        return ZERO_TIME
    moment = datetime.fromtimestamp(time_s, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as notifications carry it.

    ``ends_at`` is ``None`` while firing; a resolved alert has the time it
    stopped firing. ``value`` is the condition's value at the last
    evaluation (``None`` for conditions without one, such as ``absent``).
    """

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float | None = None
    generator_url: str = ""
    value: float | None = None
    fingerprint: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint(self.labels))

    @classmethod
    def firing(
        cls, labels: Mapping[str, str], annotations: Mapping[str, str], starts_at: float, **extra: object
    ) -> Alert:
        return cls(dict(labels), dict(annotations), starts_at, None, **extra)  # type: ignore[arg-type]

    @property
    def status(self) -> Status:
        return "firing" if self.ends_at is None else "resolved"

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def resolved_at(self, time_s: float) -> Alert:
        return replace(self, ends_at=time_s)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one receiver about one group of alerts.

    ``group_key`` identifies the group across notifications (route path and
    group labels), as Alertmanager's ``groupKey``. A rate-limit *digest*
    folds several notifications into one: ``folded`` says how many it
    replaced (0 for an ordinary notification). ``escalation_step`` is set
    when an escalation policy sent it (1 = first step after the route's own
    receiver).
    """

    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    alerts: tuple[Alert, ...]
    external_url: str = ""
    folded: int = 0
    escalation_step: int = 0

    @property
    def status(self) -> Status:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")

    @property
    def common_labels(self) -> dict[str, str]:
        return _common(a.labels for a in self.alerts)

    @property
    def common_annotations(self) -> dict[str, str]:
        return _common(a.annotations for a in self.alerts)


def _common(mappings: object) -> dict[str, str]:
    items = list(mappings)  # type: ignore[call-overload]
    if not items:
        return {}
    common = dict(items[0])
    for other in items[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


class DeliveryError(Exception):
    """A notification was not delivered.

    ``retryable`` says whether trying again may help (connection refused,
    timeout, 5xx, 429) or not (4xx, bad address). The message is shown in
    logs and the API, so it must never contain a secret: notifiers build it
    from redacted parts only.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Notifier(Protocol):
    """One configured integration of a receiver (one ``webhook_configs`` entry, say)."""

    #: ``webhook``, ``email``, ``slack``, ``sms`` or ``alertmanager``
    kind: str
    #: whether resolved notifications go out (Alertmanager's ``send_resolved``)
    send_resolved: bool

    async def notify(self, notification: Notification) -> None:
        """Deliver once; raise :class:`DeliveryError` on failure. Retrying is the caller's job."""
        ...

    def describe(self) -> str:
        """A secret-free description for logs and the API (``webhook http://host:9000/…``)."""
        ...
