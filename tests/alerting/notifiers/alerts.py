"""Notifications to send in the notifier tests, and a one-call way to send them.

    notification = group(firing("SlowCheckout", service="shop"), resolved("ErrorRate"))
    deliver(notifier, notification)            # raises DeliveryError on failure
    error = failure(notifier, notification)    # the DeliveryError, asserted raised
"""

from __future__ import annotations

import asyncio

import pytest

from trm_otel.alerting.model import Alert, DeliveryError, Notification, Notifier

__all__ = ["STARTS_AT", "deliver", "failure", "firing", "group", "resolved"]

#: 2023-11-14T22:13:20Z
STARTS_AT = 1700000000.0


def firing(name: str, *, value: float | None = None, summary: str = "", **labels: str) -> Alert:
    """A firing alert ``name`` with ``labels`` (``service`` becomes ``service.name``)."""
    if "service" in labels:
        labels["service.name"] = labels.pop("service")
    annotations = {"summary": summary} if summary else {}
    source = f"http://trm:8080/rules/{name}"
    return Alert.firing({"alertname": name, **labels}, annotations, STARTS_AT, value=value, generator_url=source)


def resolved(name: str, **labels: str) -> Alert:
    """An alert ``name`` that fired at :data:`STARTS_AT` and resolved five minutes later."""
    return firing(name, **labels).resolved_at(STARTS_AT + 300)


def group(*alerts: Alert, receiver: str = "ops", folded: int = 0, escalation_step: int = 0) -> Notification:
    """A notification grouped by ``alertname`` of the first alert."""
    return Notification(
        receiver,
        '{}:{alertname="%s"}' % alerts[0].name,
        {"alertname": alerts[0].name},
        tuple(alerts),
        external_url="http://trm:8080",
        folded=folded,
        escalation_step=escalation_step,
    )


def deliver(notifier: Notifier, notification: Notification) -> None:
    """Run one ``notify`` to completion."""
    asyncio.run(notifier.notify(notification))


def failure(notifier: Notifier, notification: Notification) -> DeliveryError:
    """The :class:`DeliveryError` one ``notify`` raises (failing the test if none)."""
    with pytest.raises(DeliveryError) as caught:
        deliver(notifier, notification)
    return caught.value
