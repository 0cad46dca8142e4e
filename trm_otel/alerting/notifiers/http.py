"""What the HTTP integrations share: one POST, its auth and TLS, and what a failure means.

    >>> redact_url("https://user:pw@hooks.slack.com/services/T0/B0/XyZ?token=1")
    'https://hooks.slack.com/…'
    >>> classify_status(503), classify_status(429), classify_status(404)
    (True, True, False)

Failures map to :class:`~trm_otel.alerting.model.DeliveryError` in one
place: connection errors, timeouts, 5xx and 429 may pass if retried; other
4xx will not (the request itself is wrong). Messages name the integration,
the redacted URL and the status, never the URL's path, query or userinfo,
nor a credential: webhook URLs are routinely the token.

Requests go through an ``httpx.AsyncHTTPTransport`` rather than an
``httpx.AsyncClient`` on purpose: the client logs every request's full URL
(query string included) at INFO on the ``httpx`` logger, which would put
webhook tokens in the application's logs.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

import httpx

from trm_otel._version import __version__
from trm_otel.alerting.model import DeliveryError, Notification

if TYPE_CHECKING:
    from trm_otel.alerting.receivers import HttpConfig, TlsConfig

__all__ = [
    "HttpTarget",
    "SetupError",
    "classify_status",
    "deliverable",
    "error_reason",
    "redact_url",
    "scrub",
    "split_host_port",
    "tls_context",
]

log = logging.getLogger("trm_otel.alerting.notifiers")

USER_AGENT = f"trm-otel/{__version__}"
_E = TypeVar("_E", bound=BaseException)
_BODY_EXCERPT = 200


class SetupError(ValueError):
    """A notifier cannot be built from a valid-looking config; ``key`` is where (``tls_config.ca_file``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def redact_url(url: str) -> str:
    """``scheme://host:port/…``: what may be shown of a URL whose path, query or userinfo may be a token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment
    return f"{parts.scheme}://{netloc}/…" if hidden else f"{parts.scheme}://{netloc}"


def split_host_port(value: str) -> tuple[str, int]:
    """``("smtp.example.com", 587)`` from ``smtp.example.com:587`` (``[::1]:25`` for IPv6)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("must be host:port (write IPv6 addresses as [::1]:25)")
    return host, int(port)


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """The client TLS context for ``tls_config``; an unreadable ``ca_file`` is a :class:`SetupError`."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
    except (OSError, ssl.SSLError) as err:
        reason = getattr(err, "strerror", None) or getattr(err, "reason", None) or type(err).__name__
        raise SetupError("tls_config.ca_file", f"cannot load {tls.ca_file!r}: {reason}") from None
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def classify_status(status: int) -> bool:
    """Whether an HTTP error status is worth retrying (5xx and 429: the server may recover)."""
    return status >= 500 or status == 429


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced, for server replies that echo the request."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def deliverable(notification: Notification, send_resolved: bool) -> Notification | None:
    """What an integration should send, as Alertmanager decides it.

    With ``send_resolved`` false, resolved alerts are left out, and a
    notification with only resolved alerts is not sent at all (``None``).
    """
    if send_resolved or not notification.resolved:
        return notification
    firing = notification.firing
    if not firing:
        return None
    return replace(notification, alerts=firing)


def _cause(err: BaseException, kind: type[_E]) -> _E | None:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def error_reason(err: BaseException) -> str:
    """A secret-free reason for a transport error: the OS's words, or the error's type."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        if isinstance(seen, ssl.SSLError):
            return f"TLS error ({seen.reason or type(seen).__name__})"
        seen = seen.__cause__ or seen.__context__
    return type(err).__name__


class HttpTarget:
    """One URL an integration posts to, with its authentication, TLS and timeout.

    Authentication, first that applies: the ``basic_auth`` argument (SMS),
    ``http_config.authorization``, ``http_config.basic_auth``, then the URL's
    userinfo (sent as basic auth, never in the request line). HTTPS trusts
    the system's CAs (as Alertmanager does, so a company CA installed on the
    host works), or ``tls_config.ca_file``.
    """

    def __init__(
        self,
        kind: str,
        url: str,
        *,
        http_config: HttpConfig | None = None,
        timeout_s: float = 10.0,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.kind = kind
        self.where = redact_url(url)
        self._url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self._timeout = httpx.Timeout(timeout_s)
        self._timeout_s = timeout_s
        self._headers: dict[str, str] = {"User-Agent": USER_AGENT}
        hidden = [u for u in (url, self._url) if u != self.where]
        hidden += [parts.query, parts.path if parts.path not in ("", "/") else ""]
        if parts.username is not None:
            hidden.append(parts.password or "")
        authorization = http_config.authorization if http_config is not None else None
        if basic_auth is None and authorization is not None:
            token = authorization.credentials.get_secret_value()
            self._headers["Authorization"] = f"{authorization.type} {token}"
            hidden.append(token)
        elif basic_auth is None and http_config is not None and http_config.basic_auth is not None:
            basic_auth = (http_config.basic_auth.username, http_config.basic_auth.password.get_secret_value())
        elif basic_auth is None and parts.username is not None:
            # Userinfo is percent-encoded in the URL; the credentials are the decoded text.
            basic_auth = (unquote(parts.username), unquote(parts.password or ""))
        if basic_auth is not None:
            pair = f"{basic_auth[0]}:{basic_auth[1]}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            hidden.append(basic_auth[1])
        if "Authorization" in self._headers:
            # A server echoing the header would reveal basic auth's base64 as surely as the password.
            hidden.append(self._headers["Authorization"].partition(" ")[2])
        self._hidden = tuple(s for s in hidden if s)
        self._verify: ssl.SSLContext | bool = True
        if parts.scheme == "https":
            try:
                self._verify = tls_context(http_config.tls_config) if http_config else ssl.create_default_context()
            except SetupError as err:
                raise SetupError(f"http_config.{err.key}", err.message) from None

    async def post(self, *, json_body: Any = None, form: Mapping[str, str] | None = None) -> httpx.Response:
        """POST once; return the 2xx response or raise :class:`DeliveryError`."""
        headers = dict(self._headers)
        if form is not None:
            content = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        request = httpx.Request("POST", self._url, headers=headers, content=content)
        request.extensions["timeout"] = self._timeout.as_dict()
        try:
            async with httpx.AsyncHTTPTransport(verify=self._verify, trust_env=False) as transport:
                response = await transport.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except httpx.TimeoutException:
            raise self.error(f"no answer within {self._timeout_s:g}s", retryable=True) from None
        except (httpx.TransportError, OSError) as err:
            untrusted = _cause(err, ssl.SSLCertVerificationError)
            if untrusted is not None:
                # Retrying will not make the certificate trusted; the config must change.
                reason = f"TLS certificate not trusted: {untrusted.verify_message} (see tls_config)"
                raise self.error(reason, retryable=False) from None
            raise self.error(f"connection failed: {error_reason(err)}", retryable=True) from None
        if not response.is_success:
            # The reply is the one untrusted part of the message: a server may echo the request.
            excerpt = scrub(" ".join(response.text[:_BODY_EXCERPT].split()), self._hidden)
            status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
            reason = f"{status}: {excerpt}" if excerpt else status
            raise self.error(reason, retryable=classify_status(response.status_code))
        return response

    def error(self, reason: str, *, retryable: bool) -> DeliveryError:
        """A :class:`DeliveryError` naming the integration and redacted URL; ``reason`` must be secret-free."""
        return DeliveryError(f"{self.kind} {self.where}: {reason}", retryable=retryable)
