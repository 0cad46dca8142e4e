"""``email_configs``: one email per notification, text and HTML, over SMTP.

    >>> from trm_otel.alerting.model import Alert, Notification
    >>> from trm_otel.alerting.receivers import EmailConfig
    >>> config = EmailConfig.model_validate({"to": "ops@example.com", "from": "trm@example.com",
    ...                                      "smarthost": "smtp.example.com:587"})
    >>> n = Notification("ops", "g", {"alertname": "Down"}, (Alert.firing({"alertname": "Down"}, {}, 0.0),))
    >>> message = email_message(n, config)
    >>> message["Subject"], message.get_content_type()
    ('[FIRING:1] Down', 'multipart/alternative')

Transport security follows Alertmanager: implicit TLS when the smarthost
port is 465 (or ``implicit_tls: true``); otherwise STARTTLS when
``require_tls`` (the default), failing if the server does not offer it;
with ``require_tls: false`` the mail goes in clear, as Alertmanager sends
it. Credentials are never sent unencrypted except to a loopback relay.
One AUTH mechanism is tried, as Alertmanager does: PLAIN (with
``auth_identity`` as its authorization identity), else LOGIN, else
CRAM-MD5.

smtplib blocks, so each send runs in a worker thread
(``asyncio.to_thread``); alert volumes make that cheap.
"""

from __future__ import annotations

import asyncio
import ipaddress
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from typing import TYPE_CHECKING

from trm_otel.alerting.model import DeliveryError, Notification
from trm_otel.alerting.notifiers.http import deliverable, error_reason, log, scrub, split_host_port, tls_context
from trm_otel.alerting.templates import DEFAULT_HTML, DEFAULT_TEXT, DEFAULT_TITLE, render

if TYPE_CHECKING:
    from trm_otel.alerting.receivers import EmailConfig

__all__ = ["EmailNotifier", "email_message"]


def email_message(notification: Notification, config: EmailConfig, *, external_url: str = "") -> EmailMessage:
    """The message for ``notification``: headers (templates), then text and/or HTML parts."""
    sender_domain = parseaddr(config.from_)[1].rpartition("@")[2] or None
    headers: dict[str, tuple[str, str]] = {
        "from": ("From", config.from_),
        "to": ("To", config.to),
        "subject": ("Subject", DEFAULT_TITLE),
        "date": ("Date", formatdate(usegmt=True)),
        "message-id": ("Message-Id", make_msgid(domain=sender_domain)),
    }
    templated = {"subject"}
    for name, source in config.headers.items():
        headers[name.lower()] = (name, source)
        templated.add(name.lower())
    message = EmailMessage()
    for lower, (name, value) in headers.items():
        if lower in templated:
            fallback = DEFAULT_TITLE if lower == "subject" else ""
            key = f"email headers.{name}"
            value = render(value, notification, fallback=fallback, key=key, external_url=external_url)
        message[name] = " ".join(value.split())
    text = _body(config.text, DEFAULT_TEXT, notification, html=False, external_url=external_url)
    html = _body(config.html, DEFAULT_HTML, notification, html=True, external_url=external_url)
    if text or not html:
        message.set_content(text + "\n")
        if html:
            message.add_alternative(html + "\n", subtype="html")
    else:
        message.set_content(html + "\n", subtype="html")
    return message


def _body(source: str | None, default: str, notification: Notification, *, html: bool, external_url: str) -> str:
    """``None`` is the default template; an empty string leaves the part out."""
    if source == "":
        return ""
    kind = "html" if html else "text"
    return render(
        source or default, notification, html=html, fallback=default, key=f"email {kind}", external_url=external_url
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmailNotifier:
    """Sends :func:`email_message` through ``smarthost`` (see the module docstring for TLS and AUTH)."""

    kind = "email"

    def __init__(self, config: EmailConfig, *, external_url: str = "") -> None:
        self.config = config
        self.send_resolved = config.send_resolved
        self.external_url = external_url
        self._host, self._port = split_host_port(config.smarthost)
        self._tls = tls_context(config.tls_config)
        self._sender = parseaddr(config.from_)[1]
        self._recipients = [address for _, address in getaddresses([config.to]) if "@" in address]
        password = config.auth_password.get_secret_value() if config.auth_password is not None else ""
        self._secrets = (password,) if password else ()

    def describe(self) -> str:
        return f"{self.kind} to {', '.join(self._recipients)} via {self.config.smarthost}"

    async def notify(self, notification: Notification) -> None:
        sendable = deliverable(notification, self.send_resolved)
        if sendable is None:
            return
        message = email_message(sendable, self.config, external_url=self.external_url)
        await asyncio.to_thread(self._send, message)
        log.debug("%s: delivered %d alerts of group %s", self.describe(), len(sendable.alerts), sendable.group_key)

    def _error(self, reason: str, *, retryable: bool) -> DeliveryError:
        return DeliveryError(f"{self.describe()}: {reason}", retryable=retryable)

    def _send(self, message: EmailMessage) -> None:
        """Connect, secure, authenticate and send; every failure becomes a :class:`DeliveryError`."""
        try:
            self._deliver(message)
        except DeliveryError:
            raise
        except smtplib.SMTPResponseException as err:
            # 4xx is "try again later", 5xx is final (RFC 5321 4.2.1).
            text = err.smtp_error.decode(errors="replace") if isinstance(err.smtp_error, bytes) else str(err.smtp_error)
            reason = f"SMTP {err.smtp_code} {scrub(' '.join(text.split())[:200], self._secrets)}"
            raise self._error(reason, retryable=400 <= err.smtp_code < 500) from None
        except smtplib.SMTPRecipientsRefused as err:
            codes = sorted({code for code, _ in err.recipients.values()})
            raise self._error(
                f"all recipients refused (SMTP {', '.join(map(str, codes))})",
                retryable=all(400 <= code < 500 for code in codes),
            ) from None
        except smtplib.SMTPNotSupportedError as err:
            raise self._error(f"not supported by the server: {err}", retryable=False) from None
        except ssl.SSLCertVerificationError as err:
            raise self._error(f"TLS certificate not trusted: {err.verify_message}", retryable=False) from None
        except TimeoutError:
            raise self._error(f"no answer within {self.config.timeout:g}s", retryable=True) from None
        except (smtplib.SMTPException, OSError) as err:
            raise self._error(f"connection failed: {error_reason(err)}", retryable=True) from None

    def _deliver(self, message: EmailMessage) -> None:
        config = self.config
        smtp: smtplib.SMTP
        if config.uses_implicit_tls:
            smtp = smtplib.SMTP_SSL(
                self._host, self._port, local_hostname=config.hello, timeout=config.timeout, context=self._tls
            )
        else:
            smtp = smtplib.SMTP(self._host, self._port, local_hostname=config.hello, timeout=config.timeout)
        with smtp:
            smtp.ehlo()
            encrypted = config.uses_implicit_tls
            if not encrypted and config.require_tls:
                if not smtp.has_extn("starttls"):
                    reason = "server does not offer STARTTLS (set require_tls: false to send in clear)"
                    raise self._error(reason, retryable=False)
                smtp.starttls(context=self._tls)
                smtp.ehlo()
                encrypted = True
            if config.auth_username:
                self._authenticate(smtp, encrypted=encrypted)
            refused = smtp.send_message(message, from_addr=self._sender, to_addrs=self._recipients)
        if refused:
            log.warning("%s: recipients refused: %s", self.describe(), ", ".join(sorted(refused)))

    def _authenticate(self, smtp: smtplib.SMTP, *, encrypted: bool) -> None:
        """One attempt with one mechanism, as Alertmanager: PLAIN, else LOGIN, else CRAM-MD5.

        (smtplib's ``login`` would retry every mechanism with the same
        wrong password, which some servers answer by stalling.)
        """
        config = self.config
        if not smtp.has_extn("auth"):
            raise self._error("auth_username is set but the server does not offer AUTH", retryable=False)
        if not encrypted and not _is_loopback(self._host):
            raise self._error("refusing to send credentials without TLS (enable require_tls)", retryable=False)
        offered = smtp.esmtp_features["auth"].upper().split()
        mechanism = next((m for m in ("PLAIN", "LOGIN", "CRAM-MD5") if m in offered), None)
        if mechanism is None:
            reason = f"no AUTH mechanism in common (server: {' '.join(offered)}; trm-otel: PLAIN LOGIN CRAM-MD5)"
            raise self._error(reason, retryable=False)
        smtp.user = config.auth_username or ""
        smtp.password = config.auth_password.get_secret_value() if config.auth_password is not None else ""
        if mechanism == "PLAIN":
            identity, user, password = config.auth_identity or "", smtp.user, smtp.password

            def plain(challenge: bytes | None = None) -> str:
                return f"{identity}\0{user}\0{password}"

            smtp.auth("PLAIN", plain, initial_response_ok=True)
        elif mechanism == "LOGIN":
            smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=True)
        else:
            smtp.auth("CRAM-MD5", smtp.auth_cram_md5, initial_response_ok=False)
