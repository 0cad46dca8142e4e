"""Real servers on loopback for the notifier tests: a recording HTTP server, an SMTP server, TLS files.

    with RecordingHttpServer() as server:
        server.respond(500, b"boom")
        ...  # point a notifier at server.url + "/hook"
        server.requests[0].json()

Nothing is mocked: notifiers speak HTTP and SMTP to these over sockets, so
the tests cover headers, encodings, TLS handshakes and AUTH exchanges as a
real endpoint sees them.
"""

from __future__ import annotations

import base64
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ...certificates import TlsFiles, make_tls_files  # here too: the notifier tests' servers speak TLS

__all__ = [
    "Received",
    "Recorded",
    "RecordingHttpServer",
    "SmtpServer",
    "TlsFiles",
    "echo_request",
    "free_port",
    "make_tls_files",
    "non_loopback_address",
]


def non_loopback_address() -> str | None:
    """This host's outbound IPv4 address, if it has one (no packet is sent)."""
    for probe in ("198.51.100.1", "10.254.254.254"):  # documentation / private ranges: routed, never reached
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((probe, 9))
            except OSError:
                continue
            address = str(sock.getsockname()[0])
        if address != "0.0.0.0" and not ipaddress.ip_address(address).is_loopback:
            return address
    return None


def free_port() -> int:
    """A loopback port free right now (for servers that cannot bind port 0 and report it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- HTTP --------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it; header names are lower-case, ``at`` is its arrival (``time.time()``)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def basic_auth(self) -> tuple[str, str]:
        scheme, _, encoded = self.headers["authorization"].partition(" ")
        assert scheme == "Basic"
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return user, password


@dataclass
class _Reply:
    status: int
    body: bytes | Callable[[Recorded], bytes] = b"ok"
    delay_s: float = 0.0


class RecordingHttpServer:
    """A threaded HTTP(S) server on 127.0.0.1 that records requests and answers as told.

    ``respond()`` queues replies (used in order, then the default 200 "ok");
    ``always()`` changes the default. A reply body may be a function of the
    request, to play a server that echoes what it got (secrets included).
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Recorded] = []
        self._replies: list[_Reply] = []
        self._default = _Reply(200)
        self._lock = threading.Lock()
        self._tls = tls
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                arrived = time.time()
                length = int(self.headers.get("Content-Length", "0"))
                headers = {k.lower(): v for k, v in self.headers.items()}
                record = Recorded(self.command, self.path, headers, self.rfile.read(length), arrived)
                reply = recorder._record(record)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                body = reply.body(record) if callable(reply.body) else reply.body
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - overridden signature
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _record(self, record: Recorded) -> _Reply:
        with self._lock:
            self.requests.append(record)
            return self._replies.pop(0) if self._replies else self._default

    @property
    def url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def respond(self, status: int, body: bytes | Callable[[Recorded], bytes] = b"", *, delay_s: float = 0.0) -> None:
        with self._lock:
            self._replies.append(_Reply(status, body, delay_s))

    def always(self, status: int, body: bytes | Callable[[Recorded], bytes] = b"") -> None:
        with self._lock:
            self._default = _Reply(status, body)

    def __enter__(self) -> RecordingHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def echo_request(record: Recorded) -> bytes:
    """A reply body repeating the request's path and Authorization header, as careless servers do."""
    return f"rejected {record.path} with {record.headers.get('authorization', '')}".encode()


# --- SMTP --------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message the SMTP server accepted, with how the session was secured."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None
    helo: str | None


@dataclass
class _SmtpHandler:
    implicit_tls: bool
    received: list[Received] = field(default_factory=list)
    reply: str = "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's naming
        if not self.reply.startswith("2"):
            return self.reply
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        tls = self.implicit_tls or session.ssl is not None
        received = Received(envelope.mail_from or "", list(envelope.rcpt_tos), message, tls, login, session.host_name)
        self.received.append(received)
        return "250 OK"


class _PlainWithIdentity(_SmtpHandler):
    """Also records PLAIN's authorization identity (aiosmtpd's own PLAIN drops it)."""

    def __init__(self, implicit_tls: bool, users: dict[str, str]) -> None:
        super().__init__(implicit_tls)
        self.users = users
        self.identities: list[str] = []

    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd's naming
        identity, login, password = base64.b64decode(args[1]).split(b"\0")
        self.identities.append(identity.decode())
        ok = self.users.get(login.decode()) == password.decode()
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(login, password))


class SmtpServer:
    """aiosmtpd on 127.0.0.1: plain, STARTTLS (``starttls=``) or implicit TLS (``implicit_tls=``).

    ``users`` turns on AUTH (offered only after STARTTLS unless
    ``auth_require_tls=False``, and then required); ``reply`` replaces the
    answer to DATA (``"451 4.3.0 try later"``); ``exclude_mechanisms``
    hides AUTH mechanisms (``("PLAIN",)`` leaves LOGIN); ``host`` is the
    address to listen on (and to put in ``smarthost``).
    """

    def __init__(
        self,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        auth_require_tls: bool = True,
        reply: str = "250 OK",
        record_identity: bool = False,
        exclude_mechanisms: tuple[str, ...] = (),
        host: str = "127.0.0.1",
    ) -> None:
        if record_identity:
            self.handler: _SmtpHandler = _PlainWithIdentity(implicit_tls is not None, users or {})
        else:
            self.handler = _SmtpHandler(implicit_tls is not None)
        self.handler.reply = reply
        self.host = host
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if users is not None:
            # Implicit TLS is invisible to aiosmtpd's check, which only knows STARTTLS;
            # aiosmtpd warns about requiring AUTH without TLS, so only require it with TLS.
            require_tls = auth_require_tls and implicit_tls is None
            kwargs.update(authenticator=_authenticator(users), auth_required=require_tls, auth_require_tls=require_tls)
        if exclude_mechanisms:
            kwargs["auth_exclude_mechanism"] = list(exclude_mechanisms)
        self._controller = Controller(
            self.handler,
            hostname=host,
            port=self.port,
            tls_context=starttls,
            ssl_context=implicit_tls,
            server_hostname="localhost",
            **kwargs,
        )

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def smarthost(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def _authenticator(users: dict[str, str]) -> Callable[..., AuthResult]:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and users.get(auth_data.login.decode()) == auth_data.password.decode()
        # handled=False: aiosmtpd itself answers a failure with 535.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticate
