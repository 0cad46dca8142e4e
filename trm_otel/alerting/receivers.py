"""Receivers: where notifications go, in Alertmanager's own config shape.

    >>> receiver = ReceiverConfig.model_validate({
    ...     "name": "ops",
    ...     "webhook_configs": [{"url": "https://hooks.example.com/alert?token=s3cret"}],
    ...     "rate_limit": {"max_notifications": 10, "per": "1h"},
    ... })
    >>> receiver.webhook_configs[0].url
    SecretUrl('https://hooks.example.com/…')
    >>> [n.describe() for n in build_notifiers(receiver, external_url="http://trm:8080")]
    ['webhook https://hooks.example.com/…']

The key names are Alertmanager's (``webhook_configs``, ``send_resolved``,
``http_config.authorization.credentials``, ``smarthost``, ``api_url`` ...)
so a receiver can be pasted from an Alertmanager config; ``sms_configs``
(Twilio's API) and ``alertmanager_configs`` (forward to a real
Alertmanager) and ``rate_limit`` are trm-otel's own.

Secrets never print: passwords, tokens and credentials are ``SecretStr``;
URLs are :class:`SecretUrl`, shown as ``scheme://host:port/…`` because
webhook paths and queries often are the token (Slack, Teams, Discord).
Validation errors leave out the input for the same reason.

Email TLS follows Alertmanager: implicit TLS (SMTPS) when the smarthost
port is 465, otherwise STARTTLS, required unless ``require_tls: false``.
``implicit_tls: true|false`` (trm-otel's) overrides the port rule for
servers that speak SMTPS on another port.
"""

from __future__ import annotations

from email.utils import getaddresses
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, PlainSerializer, SecretStr, model_validator

from trm_otel.alerting.model import Notifier
from trm_otel.alerting.notifiers.http import SetupError, redact_url, split_host_port
from trm_otel.alerting.templates import HtmlTemplate, Template
from trm_otel.config_types import Duration, StrictModel
from trm_otel.errors import ConfigError

__all__ = [
    "AlertmanagerConfig",
    "AuthorizationConfig",
    "BasicAuthConfig",
    "EmailConfig",
    "HttpConfig",
    "RateLimitConfig",
    "ReceiverConfig",
    "SecretUrl",
    "SlackConfig",
    "SmsConfig",
    "TlsConfig",
    "WebhookConfig",
    "build_notifiers",
]


class SecretUrl(SecretStr):
    """A URL that may carry a token: ``str``, ``repr`` and JSON show ``scheme://host:port/…``."""

    def _display(self) -> str:
        return redact_url(self.get_secret_value())


def _http_url(value: SecretUrl) -> SecretUrl:
    try:
        parts = urlsplit(value.get_secret_value())
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


#: An http(s) URL kept secret (see :class:`SecretUrl`).
HttpUrl = Annotated[SecretUrl, AfterValidator(_http_url), PlainSerializer(str, return_type=str, when_used="json")]


def _smarthost(value: str) -> str:
    try:
        split_host_port(value)
    except ValueError as err:
        raise ValueError(f"{err} (e.g. smtp.example.com:587)") from None
    return value


def _addresses(value: str) -> str:
    found = [address for _, address in getaddresses([value]) if "@" in address]
    if not found:
        raise ValueError("no email address found (e.g. 'ops@example.com, Oncall <oncall@example.com>')")
    return value


class _Model(StrictModel):
    # A bad URL's input is the secret itself: keep it out of error messages.
    model_config = ConfigDict(hide_input_in_errors=True)


class AuthorizationConfig(_Model):
    """``http_config.authorization``: an ``Authorization: <type> <credentials>`` header."""

    type: str = "Bearer"
    credentials: SecretStr


class BasicAuthConfig(_Model):
    """``http_config.basic_auth``: HTTP basic authentication."""

    username: str
    password: SecretStr = SecretStr("")


class TlsConfig(_Model):
    """``tls_config``: which CA to trust (the system's by default), or none at all."""

    ca_file: str | None = None
    insecure_skip_verify: bool = False


class HttpConfig(_Model):
    """``http_config``: authentication and TLS of an HTTP integration."""

    authorization: AuthorizationConfig | None = None
    basic_auth: BasicAuthConfig | None = None
    tls_config: TlsConfig = Field(default_factory=TlsConfig)

    @model_validator(mode="after")
    def _one_auth(self) -> HttpConfig:
        if self.authorization is not None and self.basic_auth is not None:
            raise ValueError("authorization and basic_auth are mutually exclusive (choose one)")
        return self


class WebhookConfig(_Model):
    """``webhook_configs[]``: POST Alertmanager's webhook JSON (version 4) to ``url``.

    ``max_alerts`` keeps the first N alerts and counts the rest in
    ``truncatedAlerts`` (0 sends all).
    """

    url: HttpUrl
    send_resolved: bool = True
    max_alerts: int = Field(default=0, ge=0)
    http_config: HttpConfig = Field(default_factory=HttpConfig)
    timeout: Duration = 10.0


class EmailConfig(_Model):
    """``email_configs[]``: one email per notification over SMTP.

    ``headers`` are templates (``Subject`` defaults to the title
    template); ``text`` and ``html`` override the default bodies, and an
    empty string leaves that part out.
    """

    to: Annotated[str, AfterValidator(_addresses)]
    from_: Annotated[str, AfterValidator(_addresses)] = Field(alias="from")
    smarthost: Annotated[str, AfterValidator(_smarthost)]
    hello: str = "localhost"
    auth_username: str | None = None
    auth_password: SecretStr | None = None
    auth_identity: str | None = None
    require_tls: bool = True
    implicit_tls: bool | None = None
    tls_config: TlsConfig = Field(default_factory=TlsConfig)
    headers: dict[str, Template] = Field(default_factory=dict)
    html: HtmlTemplate | None = None
    text: Template | None = None
    send_resolved: bool = False
    timeout: Duration = 30.0

    @property
    def uses_implicit_tls(self) -> bool:
        """SMTPS from the first byte: ``implicit_tls`` if set, else port 465 (as Alertmanager)."""
        if self.implicit_tls is not None:
            return self.implicit_tls
        return split_host_port(self.smarthost)[1] == 465


class SlackConfig(_Model):
    """``slack_configs[]``: an incoming-webhook message with a coloured attachment.

    ``color`` (a template) overrides the colour chosen from the ``severity``
    label; ``title_link`` defaults to the external URL.
    """

    api_url: HttpUrl
    channel: str | None = None
    username: str | None = None
    icon_emoji: str | None = None
    title: Template | None = None
    title_link: str | None = None
    text: Template | None = None
    color: Template | None = None
    send_resolved: bool = False
    http_config: HttpConfig = Field(default_factory=HttpConfig)
    timeout: Duration = 10.0


class SmsConfig(_Model):
    """``sms_configs[]`` (trm-otel's): Twilio's Messages API, one request per number.

    ``url`` defaults to Twilio's endpoint for ``account_sid``; any service
    taking the same form post (``From``, ``To``, ``Body``, basic auth) works.
    """

    url: HttpUrl | None = None
    account_sid: str = Field(min_length=1)
    auth_token: SecretStr
    from_: str = Field(alias="from", min_length=1)
    to: tuple[str, ...] = Field(min_length=1)
    text: Template | None = None
    send_resolved: bool = False
    timeout: Duration = 10.0

    @property
    def endpoint(self) -> str:
        """The URL posted to (the secret value: do not log)."""
        if self.url is not None:
            return self.url.get_secret_value()
        return f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/Messages.json"


class AlertmanagerConfig(_Model):
    """``alertmanager_configs[]`` (trm-otel's): hand alerts to an Alertmanager's API v2.

    Firing alerts are posted with ``endsAt`` = now + 4 × ``resend_delay``
    and must be re-sent every ``resend_delay`` while firing, as Prometheus
    does, so Alertmanager resolves them by itself if trm-otel goes away.
    """

    url: HttpUrl
    http_config: HttpConfig = Field(default_factory=HttpConfig)
    timeout: Duration = 10.0
    resend_delay: Duration = 60.0


class RateLimitConfig(_Model):
    """``rate_limit``: at most ``max_notifications`` per ``per`` to this receiver; the rest are folded into a digest."""

    max_notifications: int = Field(ge=1)
    per: Duration


class ReceiverConfig(_Model):
    """``receivers[]``: a named set of integrations, each notified for every notification."""

    name: str = Field(min_length=1)
    webhook_configs: tuple[WebhookConfig, ...] = ()
    email_configs: tuple[EmailConfig, ...] = ()
    slack_configs: tuple[SlackConfig, ...] = ()
    sms_configs: tuple[SmsConfig, ...] = ()
    alertmanager_configs: tuple[AlertmanagerConfig, ...] = ()
    rate_limit: RateLimitConfig | None = None


def build_notifiers(receiver: ReceiverConfig, *, external_url: str, key_path: str = "") -> list[Notifier]:
    """One notifier per configured integration, in config order (webhook, email, slack, sms, alertmanager).

    Problems only visible when building (an unreadable ``ca_file``) raise
    :class:`~trm_otel.errors.ConfigError` at ``key_path`` plus the
    integration's key (``webhook_configs[0].http_config.tls_config.ca_file``).
    """
    from trm_otel.alerting.notifiers.alertmanager import AlertmanagerNotifier
    from trm_otel.alerting.notifiers.email import EmailNotifier
    from trm_otel.alerting.notifiers.slack import SlackNotifier
    from trm_otel.alerting.notifiers.sms import SmsNotifier
    from trm_otel.alerting.notifiers.webhook import WebhookNotifier

    factories: list[tuple[str, tuple[Any, ...], Any]] = [
        ("webhook_configs", receiver.webhook_configs, WebhookNotifier),
        ("email_configs", receiver.email_configs, EmailNotifier),
        ("slack_configs", receiver.slack_configs, SlackNotifier),
        ("sms_configs", receiver.sms_configs, SmsNotifier),
        ("alertmanager_configs", receiver.alertmanager_configs, AlertmanagerNotifier),
    ]
    notifiers: list[Notifier] = []
    problems: list[tuple[str, str]] = []
    prefix = f"{key_path}." if key_path else ""
    for key, configs, factory in factories:
        for index, config in enumerate(configs):
            try:
                notifiers.append(factory(config, external_url=external_url))
            except SetupError as err:
                problems.append((f"{prefix}{key}[{index}].{err.key}", err.message))
    if problems:
        raise ConfigError(problems)
    return notifiers
