"""Real mail servers for the mail tests: a private Dovecot (IMAP) and an aiosmtpd server (SMTP).

`dovecot` is function-scoped: a start takes about 0.1 s (measured; the certificate and config
included), cheap enough for every test to get a fresh server with empty mailboxes, free to stop,
kill or restart it. Both servers are blocking to control; from an async test whose client runs on
the same loop, call e.g. `await asyncio.to_thread(dovecot.restart)` so the client keeps running.

Without Dovecot installed the IMAP tests skip, except under CI (CI set), where they fail: CI
installs Debian's dovecot-imapd (.ci/run), so a missing server there is a broken setup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.dovecot import Dovecot, running_dovecot
from support.smtp_server import SmtpServer, TlsMode

SMTP_USER = "mailer"
SMTP_PASSWORD = "mailer-secret"
SMTP_TOKEN = "mailer-oauth-token"


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """A running Dovecot with one user (`user`, `password`, `oauth_token`) and an empty INBOX."""
    yield from running_dovecot(tmp_path)


SmtpServerFactory = Callable[..., SmtpServer]


@pytest.fixture
def smtp_server_factory(tmp_path: Path) -> Iterator[SmtpServerFactory]:
    """Make SMTP servers: `factory(tls="starttls", user=None, start=False)`; all stopped after the test.

    By default a server has user `mailer` (password and XOAUTH2 token in this module) and then
    requires AUTH before MAIL FROM; pass user=None for an open relay.
    """
    servers: list[SmtpServer] = []

    def factory(*, tls: TlsMode = "none", user: str | None = SMTP_USER, start: bool = True,
                auth_require_tls: bool = False) -> SmtpServer:
        cert_dir = tmp_path / f"smtp{len(servers)}"
        cert_dir.mkdir()
        server = SmtpServer(cert_dir, tls=tls, user=user, password=SMTP_PASSWORD,
                            oauth_token=SMTP_TOKEN, auth_require_tls=auth_require_tls)
        servers.append(server)
        if start:
            server.start()
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: SmtpServerFactory) -> SmtpServer:
    """A running SMTP server without TLS that requires AUTH as `mailer`."""
    return smtp_server_factory()
