"""``sms_configs``: a short text to each number through Twilio's Messages API.

    POST https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Messages.json
    Authorization: Basic base64(account_sid:auth_token)
    Content-Type: application/x-www-form-urlencoded

    From=%2B15550001111&To=%2B15552223333&Body=%5BFIRING%3A1%5D+...

One request per number, since the API takes one ``To``. When some numbers
fail, the error says how many; a retry of the same notification skips the
numbers already reached, so nobody gets the page twice. The default body is
one GSM-7 segment (160 characters, cut with ``...``, since an ellipsis
character would switch the message to UCS-2 and 70 characters).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from trm_otel.alerting.model import DeliveryError, Notification
from trm_otel.alerting.notifiers.http import HttpTarget, deliverable, log
from trm_otel.alerting.templates import DEFAULT_SMS, SMS_DEFAULT_LIMIT, SMS_MAX_LENGTH, render

if TYPE_CHECKING:
    from trm_otel.alerting.receivers import SmsConfig

__all__ = ["SmsNotifier", "sms_body"]

#: How many partly delivered notifications are remembered for their retry.
_PENDING_MAX = 256


def sms_body(notification: Notification, config: SmsConfig, *, external_url: str = "") -> str:
    """The message text: the default cut to 160 characters, a custom ``text`` to Twilio's 1600."""
    text = render(
        config.text or DEFAULT_SMS, notification, fallback=DEFAULT_SMS, key="sms text", external_url=external_url
    )
    text = " ".join(text.split())
    limit = SMS_MAX_LENGTH if config.text else SMS_DEFAULT_LIMIT
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _identity(notification: Notification) -> tuple[object, ...]:
    """What makes a retry "the same notification" (Notification itself holds dicts, so is unhashable)."""
    return (
        notification.receiver,
        notification.group_key,
        tuple((a.fingerprint, a.status, a.starts_at, a.ends_at) for a in notification.alerts),
        notification.folded,
        notification.escalation_step,
    )


class SmsNotifier:
    """Form-posts ``From``, ``To``, ``Body`` once per number in ``to``."""

    kind = "sms"

    def __init__(self, config: SmsConfig, *, external_url: str = "") -> None:
        self.config = config
        self.send_resolved = config.send_resolved
        self.external_url = external_url
        token = config.auth_token.get_secret_value()
        self._target = HttpTarget(
            self.kind, config.endpoint, timeout_s=config.timeout, basic_auth=(config.account_sid, token)
        )
        self._reached: OrderedDict[tuple[object, ...], set[str]] = OrderedDict()

    def describe(self) -> str:
        count = len(self.config.to)
        return f"{self.kind} to {count} number{'s' if count != 1 else ''} via {self._target.where}"

    async def notify(self, notification: Notification) -> None:
        sendable = deliverable(notification, self.send_resolved)
        if sendable is None:
            return
        body = sms_body(sendable, self.config, external_url=self.external_url)
        key = _identity(sendable)
        reached = self._reached.pop(key, set())
        failures: list[DeliveryError] = []
        for number in self.config.to:
            if number in reached:
                continue
            try:
                await self._target.post(form={"From": self.config.from_, "To": number, "Body": body})
            except DeliveryError as err:
                failures.append(err)
            else:
                reached.add(number)
        if not failures:
            log.debug("%s: delivered group %s", self.describe(), sendable.group_key)
            return
        self._reached[key] = reached
        while len(self._reached) > _PENDING_MAX:
            self._reached.popitem(last=False)
        total = len(self.config.to)
        first = str(failures[0])
        raise DeliveryError(
            f"{first} ({len(failures)} of {total} numbers failed)" if total > 1 else first,
            retryable=all(f.retryable for f in failures),
        )
