"""The email notifier against a real SMTP server (aiosmtpd): STARTTLS, implicit TLS, AUTH, MIME."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.alerting.notifiers.alerts import deliver, failure, firing, group, resolved
from tests.alerting.notifiers.secrets import assert_no_secret
from tests.alerting.notifiers.servers import Received, SmtpServer, TlsFiles, free_port, non_loopback_address
from trm_otel.alerting.notifiers.email import EmailNotifier
from trm_otel.alerting.receivers import EmailConfig

USERS = {"trm": "pa55word"}


def config(smarthost: str, **values: Any) -> EmailConfig:
    base = {"to": "ops@example.com, Oncall <oncall@example.com>", "from": "trm-otel <trm@example.com>"}
    return EmailConfig.model_validate({**base, "smarthost": smarthost, **values})


def email(smarthost: str, **values: Any) -> EmailNotifier:
    return EmailNotifier(config(smarthost, **values), external_url="http://trm:8080")


def only(server: SmtpServer) -> Received:
    (received,) = server.received
    return received


def test_starttls_auth_and_a_multipart_message(tls_files: TlsFiles) -> None:
    with SmtpServer(starttls=tls_files.server_context(), users=USERS) as server:
        notifier = email(
            server.smarthost,
            hello="trm.example.com",
            auth_username="trm",
            auth_password="pa55word",
            tls_config={"ca_file": str(tls_files.ca_file)},
        )
        deliver(notifier, group(firing("SlowCheckout", service="shop<b>", summary="P95 high", value=1.5)))

    received = only(server)
    assert (received.tls, received.login, received.helo) == (True, "trm", "trm.example.com")
    assert received.mail_from == "trm@example.com"
    assert received.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    message = received.message
    assert message["Subject"] == "[FIRING:1] SlowCheckout"
    assert message["From"] == "trm-otel <trm@example.com>"
    assert message["To"] == "ops@example.com, Oncall <oncall@example.com>"
    assert message["Date"] and message["Message-Id"].endswith("@example.com>")
    assert message.get_content_type() == "multipart/alternative"
    text, html = (part.get_content().replace("\r\n", "\n") for part in message.iter_parts())
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert "- SlowCheckout [service.name=shop<b>]\n  value: 1.5\n  since: 2023-11-14T22:13:20.000Z\n" in text
    assert "summary: P95 high" in text and "http://trm:8080" in text
    assert "<code>service.name=shop&lt;b&gt;</code>" in html


def test_implicit_tls_with_auth(tls_files: TlsFiles) -> None:
    with SmtpServer(implicit_tls=tls_files.server_context(), users=USERS) as server:
        notifier = email(
            server.smarthost,
            implicit_tls=True,
            auth_username="trm",
            auth_password="pa55word",
            tls_config={"ca_file": str(tls_files.ca_file)},
        )
        deliver(notifier, group(firing("Down")))

    assert (only(server).tls, only(server).login) == (True, "trm")


def test_port_465_means_implicit_tls() -> None:
    assert config("smtp.example.com:465").uses_implicit_tls
    assert not config("smtp.example.com:587").uses_implicit_tls
    assert not config("smtp.example.com:465", implicit_tls=False).uses_implicit_tls
    assert config("[::1]:2465", implicit_tls=True).uses_implicit_tls


def test_auth_identity_is_sent_with_plain(tls_files: TlsFiles) -> None:
    with SmtpServer(starttls=tls_files.server_context(), users=USERS, record_identity=True) as server:
        notifier = email(
            server.smarthost,
            auth_username="trm",
            auth_password="pa55word",
            auth_identity="ops-team",
            tls_config={"ca_file": str(tls_files.ca_file)},
        )
        deliver(notifier, group(firing("Down")))

    assert server.handler.identities == ["ops-team"]  # type: ignore[attr-defined]
    assert only(server).login == "trm"


def test_login_mechanism_when_plain_is_not_offered(tls_files: TlsFiles) -> None:
    with SmtpServer(starttls=tls_files.server_context(), users=USERS, exclude_mechanisms=("PLAIN",)) as server:
        notifier = email(
            server.smarthost,
            auth_username="trm",
            auth_password="pa55word",
            tls_config={"ca_file": str(tls_files.ca_file)},
        )
        deliver(notifier, group(firing("Down")))

    assert only(server).login == "trm"


def test_require_tls_refuses_a_server_without_starttls() -> None:
    with SmtpServer() as server:
        error = failure(email(server.smarthost), group(firing("Down")))

    assert not error.retryable
    assert str(error) == (
        f"email to ops@example.com, oncall@example.com via {server.smarthost}: "
        "server does not offer STARTTLS (set require_tls: false to send in clear)"
    )
    assert server.received == []


def test_require_tls_false_sends_in_clear_with_auth_on_loopback() -> None:
    with SmtpServer(users=USERS, auth_require_tls=False) as server:
        notifier = email(server.smarthost, require_tls=False, auth_username="trm", auth_password="pa55word")
        deliver(notifier, group(firing("Down")))

    assert (only(server).tls, only(server).login) == (False, "trm")


def test_credentials_are_not_sent_in_clear_beyond_loopback() -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address to reach a server by")
    with SmtpServer(users=USERS, auth_require_tls=False, host=address) as server:
        notifier = email(server.smarthost, require_tls=False, auth_username="trm", auth_password="pa55word")
        error = failure(notifier, group(firing("Down")))

    assert not error.retryable
    reason = "refusing to send credentials without TLS (enable require_tls)"
    assert str(error).endswith(f"via {address}:{server.port}: {reason}")
    assert server.received == []


def test_untrusted_certificate_is_final(tls_files: TlsFiles) -> None:
    with SmtpServer(starttls=tls_files.server_context()) as server:
        error = failure(email(server.smarthost), group(firing("Down")))

    assert not error.retryable
    assert "TLS certificate not trusted: unable to get local issuer certificate" in str(error)


def test_insecure_skip_verify(tls_files: TlsFiles) -> None:
    with SmtpServer(starttls=tls_files.server_context()) as server:
        deliver(email(server.smarthost, tls_config={"insecure_skip_verify": True}), group(firing("Down")))

    assert only(server).tls


def test_wrong_password_is_final(tls_files: TlsFiles) -> None:
    with SmtpServer(starttls=tls_files.server_context(), users=USERS) as server:
        notifier = email(
            server.smarthost, auth_username="trm", auth_password="nope", tls_config={"ca_file": str(tls_files.ca_file)}
        )
        error = failure(notifier, group(firing("Down")))

    assert not error.retryable
    assert str(error).endswith(f"via {server.smarthost}: SMTP 535 5.7.8 Authentication credentials invalid")


@pytest.mark.parametrize(("reply", "retryable"), [("451 4.3.0 Try again later", True), ("554 5.7.1 Rejected", False)])
def test_smtp_reply_codes(reply: str, retryable: bool) -> None:
    with SmtpServer(reply=reply) as server:
        error = failure(email(server.smarthost, require_tls=False), group(firing("Down")))

    assert error.retryable is retryable
    assert str(error).endswith(f": SMTP {reply}")


def test_refused_connection_is_retryable() -> None:
    port = free_port()

    error = failure(email(f"127.0.0.1:{port}"), group(firing("Down")))

    assert error.retryable
    assert str(error).endswith(f"via 127.0.0.1:{port}: connection failed: Connection refused")


def test_templates_override_headers_and_bodies() -> None:
    with SmtpServer() as server:
        notifier = email(
            server.smarthost,
            require_tls=False,
            headers={"Subject": "{{ status }}: {{ common_labels.alertname }}", "X-Team": "{{ common_labels.team }}"},
            text="{{ alerts | length }} alert(s)",
            html="",
        )
        deliver(notifier, group(firing("Down", team="core")))

    message = only(server).message
    assert (message["Subject"], message["X-Team"]) == ("firing: Down", "core")
    assert message.get_content_type() == "text/plain"
    assert message.get_content().rstrip() == "1 alert(s)"


def test_html_only() -> None:
    with SmtpServer() as server:
        deliver(email(server.smarthost, require_tls=False, text=""), group(firing("Down")))

    assert only(server).message.get_content_type() == "text/html"


def test_digest_and_escalation_are_said(tls_files: TlsFiles) -> None:
    with SmtpServer() as server:
        deliver(email(server.smarthost, require_tls=False), group(firing("Down"), folded=4, escalation_step=2))

    message = only(server).message
    assert message["Subject"] == "[ESCALATION 2] [FIRING:1] Down (digest, 4 folded)"
    text = next(message.iter_parts()).get_content()
    assert "4 notifications folded into this digest" in text
    assert "Escalation step 2" in text


def test_resolved_is_not_sent_by_default() -> None:
    with SmtpServer() as server:
        deliver(email(server.smarthost, require_tls=False), group(resolved("Down")))
        deliver(email(server.smarthost, require_tls=False, send_resolved=True), group(resolved("Down")))

    assert only(server).message["Subject"] == "[RESOLVED] Down"


def test_no_secret_leaks(tls_files: TlsFiles, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    values = {"auth_username": "trm", "auth_password": "MAILSECRET", "tls_config": {"ca_file": str(tls_files.ca_file)}}
    with SmtpServer(starttls=tls_files.server_context(), users={"trm": "MAILSECRET"}) as good:
        secret_config = config(good.smarthost, **values)
        notifier = EmailNotifier(secret_config)
        deliver(notifier, group(firing("Down")))
    with SmtpServer(starttls=tls_files.server_context(), users=USERS) as refusing:
        errors = [failure(email(refusing.smarthost, **values), group(firing("Down")))]
    errors.append(failure(email(f"127.0.0.1:{free_port()}", **values), group(firing("Down"))))

    assert only(good).login == "trm"
    assert_no_secret("MAILSECRET", config=secret_config, notifier=notifier, caplog=caplog, errors=errors)
