"""A real SMTP server on loopback for the outbox tests: aiosmtpd in its own thread, recording mail.

The port is chosen once, so `stop()` then `start()` brings the server back where the client expects
it ("the SMTP server is down at first, later up"). Options cover what a client meets in the field:
AUTH PLAIN/LOGIN with a password, XOAUTH2 with a bearer token (Gmail, Microsoft 365), and no TLS,
STARTTLS (port 587 style) or implicit TLS (port 465 style), with the certificate of
`support.certs` (`ca_file`).

AUTH is allowed without TLS by default, so tests can stay on plain loopback; aiosmtpd's own guard
(`auth_require_tls`) is a constructor option. "AUTH required" is enforced at MAIL FROM by our
handler rather than by aiosmtpd's `auth_required`, which warns about plain-text AUTH at every
connection, and any warning fails a test here.
"""

from __future__ import annotations

import asyncio

import base64
import json
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from support.certs import make_localhost_cert

HOST = "127.0.0.1"
TlsMode = Literal["none", "starttls", "ssl"]


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes  # the DATA as sent, dot-unstuffed
    login: str | None  # who authenticated, if anyone


class _Handler:
    """aiosmtpd's hooks: record each message, check credentials, speak XOAUTH2."""

    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, mail_options: list[str]) -> str:
        if self.owner.user is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        await asyncio.sleep(self.owner.data_delay)  # a slow server: an attempt that takes its time
        if self.owner.data_reply is not None:
            return self.owner.data_reply
        login = session.login_data
        self.owner.messages.append(ReceivedMessage(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            content=bytes(envelope.original_content or b""),
            login=login.decode() if isinstance(login, bytes) else login,
        ))
        return "250 2.0.0 Message accepted for delivery"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        """SASL XOAUTH2 as Gmail speaks it: base64("user=<u>\\x01auth=Bearer <token>\\x01\\x01");
        a refused token gets a 334 JSON error challenge, the client's empty reply, then 535."""
        blob = base64.b64decode(args[1]) if len(args) > 1 else await server.challenge_auth("")
        if not isinstance(blob, bytes):  # aborted or bad base64: aiosmtpd already answered
            return AuthResult(success=False, handled=True)
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        user, token = fields.get("user"), fields.get("auth", "").removeprefix("Bearer ")
        if user is not None and user == self.owner.user and token == self.owner.oauth_token:
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"})
        await server.challenge_auth(error)
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted")


class SmtpServer:
    """An SMTP server on 127.0.0.1 that keeps its port across stop() and start()."""

    def __init__(self, cert_dir: Path, *, tls: TlsMode = "none", user: str | None = None,
                 password: str | None = None, oauth_token: str | None = None,
                 auth_require_tls: bool = False) -> None:
        self.tls = tls
        self.user, self.password, self.oauth_token = user, password, oauth_token
        self.auth_require_tls = auth_require_tls
        self.messages: list[ReceivedMessage] = []
        self.data_reply: str | None = None  # e.g. "451 4.3.0 Try again later" to refuse DATA
        self.data_delay = 0.0  # seconds before DATA is answered
        self.ca_file = make_localhost_cert(cert_dir).cert
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(self.ca_file, cert_dir / "localhost.key")
        self.port = _free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("SmtpServer is already running")
        # A Controller closes its event loop on stop, so each start needs a new one.
        controller = Controller(
            _Handler(self), hostname=HOST, port=self.port,
            # Without it aiosmtpd asks DNS for our FQDN on every connection.
            server_hostname="localhost",
            ssl_context=self._context if self.tls == "ssl" else None,
            tls_context=self._context if self.tls == "starttls" else None,
            require_starttls=self.tls == "starttls",
            authenticator=self._check_password,
            auth_require_tls=self.auth_require_tls,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def _check_password(self, server: SMTP, session: Session, envelope: Envelope,
                        mechanism: str, auth_data: object) -> AuthResult:
        """aiosmtpd's authenticator for PLAIN and LOGIN."""
        ok = (isinstance(auth_data, LoginPassword) and self.user is not None
              and auth_data.login == self.user.encode()
              and auth_data.password == (self.password or "").encode())
        # handled=False: aiosmtpd then sends the 535 itself (True would leave the client waiting).
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
