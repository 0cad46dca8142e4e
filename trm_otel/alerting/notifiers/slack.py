"""``slack_configs``: a Slack incoming-webhook message, coloured by severity.

    >>> from trm_otel.alerting.model import Alert, Notification
    >>> firing = Alert.firing({"alertname": "Down", "severity": "critical"}, {}, 0.0)
    >>> severity_color(Notification("ops", "g", {}, (firing,)))
    '#d92d20'
    >>> severity_color(Notification("ops", "g", {}, (firing.resolved_at(60.0),)))
    '#12b76a'

The message is one attachment (for the coloured bar) holding Block Kit
blocks: a header with the title, a section with the text, and a context
line linking to trm-otel. The top-level ``text`` repeats the title, as
Slack uses it for notifications and screen readers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trm_otel.alerting.model import Notification
from trm_otel.alerting.notifiers.http import HttpTarget, deliverable, log
from trm_otel.alerting.templates import DEFAULT_SLACK_TEXT, DEFAULT_TITLE, render

if TYPE_CHECKING:
    from trm_otel.alerting.receivers import SlackConfig

__all__ = ["SlackNotifier", "severity_color", "slack_payload"]

RED, ORANGE, BLUE, GREEN = "#d92d20", "#f79009", "#2e90fa", "#12b76a"
_SEVERITY_COLORS = {
    "critical": RED,
    "page": RED,
    "error": RED,
    "high": RED,
    "warning": ORANGE,
    "warn": ORANGE,
    "medium": ORANGE,
}
_RANK = {RED: 2, ORANGE: 1, BLUE: 0}
#: Slack's limits: header text 150 characters, section text 3000.
_HEADER_MAX, _SECTION_MAX = 150, 3000


def severity_color(notification: Notification) -> str:
    """Green when resolved; else the worst firing ``severity``: critical red, warning orange, other blue."""
    if notification.status == "resolved":
        return GREEN
    colors = [_SEVERITY_COLORS.get(a.labels.get("severity", "").lower(), BLUE) for a in notification.firing]
    return max(colors, key=_RANK.__getitem__, default=BLUE)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(notification: Notification, config: SlackConfig, *, external_url: str = "") -> dict[str, Any]:
    """The incoming-webhook JSON for ``notification`` with ``config``'s templates and channel."""
    title = render(
        config.title or DEFAULT_TITLE,
        notification,
        fallback=DEFAULT_TITLE,
        key="slack title",
        external_url=external_url,
    )
    title = " ".join(title.split())
    text = render(
        config.text or DEFAULT_SLACK_TEXT,
        notification,
        fallback=DEFAULT_SLACK_TEXT,
        key="slack text",
        external_url=external_url,
    )
    color = severity_color(notification)
    if config.color:
        color = render(config.color, notification, fallback=color, key="slack color", external_url=external_url)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_MAX), "emoji": True}},
    ]
    if text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _SECTION_MAX)}})
    link = config.title_link or notification.external_url or external_url
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in trm-otel>"}]})
    payload: dict[str, Any] = {"text": title, "attachments": [{"color": color, "fallback": title, "blocks": blocks}]}
    for key in ("channel", "username", "icon_emoji"):
        value = getattr(config, key)
        if value:
            payload[key] = value
    return payload


class SlackNotifier:
    """POSTs :func:`slack_payload` to the incoming webhook ``api_url``."""

    kind = "slack"

    def __init__(self, config: SlackConfig, *, external_url: str = "") -> None:
        self.config = config
        self.send_resolved = config.send_resolved
        self.external_url = external_url
        self._target = HttpTarget(
            self.kind, config.api_url.get_secret_value(), http_config=config.http_config, timeout_s=config.timeout
        )

    def describe(self) -> str:
        channel = f" {self.config.channel}" if self.config.channel else ""
        return f"{self.kind}{channel} {self._target.where}"

    async def notify(self, notification: Notification) -> None:
        sendable = deliverable(notification, self.send_resolved)
        if sendable is None:
            return
        await self._target.post(json_body=slack_payload(sendable, self.config, external_url=self.external_url))
        log.debug("%s: delivered %d alerts of group %s", self.describe(), len(sendable.alerts), sendable.group_key)
