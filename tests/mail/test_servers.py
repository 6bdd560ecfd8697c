"""The test mail servers themselves, driven by real clients: what the mail tests may rely on."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aioimaplib
import aiosmtplib
import pytest
from support.dovecot import Dovecot, imap_utf7
from support.smtp_server import SmtpServer

SmtpServerFactory = Callable[..., SmtpServer]  # the smtp_server_factory fixture

MAIL = b"From: kunde@example.com\r\nTo: service@example.com\r\nSubject: Angebot\r\n\r\nHallo\r\n"


def trusting(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


# -- Dovecot --------------------------------------------------------------------


def test_login_over_plain_port_offers_idle_uidplus_move(dovecot: Dovecot) -> None:
    with imaplib.IMAP4("127.0.0.1", dovecot.port) as imap:
        assert "STARTTLS" in imap.capabilities
        imap.login(dovecot.user, dovecot.password)
        after_login = imap.capability()[1][0]  # imaplib keeps the pre-login list
        assert {b"IDLE", b"UIDPLUS", b"MOVE"} <= set(after_login.split())


def test_wrong_password_is_refused(dovecot: Dovecot) -> None:
    with imaplib.IMAP4("127.0.0.1", dovecot.port) as imap, pytest.raises(imaplib.IMAP4.error):
        imap.login(dovecot.user, "wrong")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_imaps_certificate_verifies_with_ca_file(dovecot: Dovecot, host: str) -> None:
    with imaplib.IMAP4_SSL(host, dovecot.imaps_port, ssl_context=trusting(dovecot.ca_file)) as imap:
        assert imap.login(dovecot.user, dovecot.password)[0] == "OK"


def test_imaps_certificate_is_not_trusted_by_default(dovecot: Dovecot) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL("localhost", dovecot.imaps_port, ssl_context=ssl.create_default_context())


def test_starttls_on_plain_port(dovecot: Dovecot) -> None:
    with imaplib.IMAP4("localhost", dovecot.port) as imap:
        imap.starttls(ssl_context=trusting(dovecot.ca_file))
        assert imap.login(dovecot.user, dovecot.password)[0] == "OK"


def test_append_returns_uids_and_keeps_flags(dovecot: Dovecot) -> None:
    first = dovecot.append("INBOX", MAIL, flags=[r"\Seen"])
    second = dovecot.append("INBOX", MAIL)
    assert dovecot.uids("INBOX") == [first, second]
    assert dovecot.flags("INBOX", first) == {r"\Seen"}
    assert dovecot.flags("INBOX", second) == set()
    dovecot.expunge("INBOX", first)
    assert dovecot.uids("INBOX") == [second]


def test_change_uidvalidity_keeps_the_messages(dovecot: Dovecot) -> None:
    for _ in range(3):
        dovecot.append("INBOX", MAIL)
    before = dovecot.uidvalidity("INBOX")
    after = dovecot.change_uidvalidity("INBOX")
    assert after != before
    assert dovecot.uidvalidity("INBOX") == after
    assert len(dovecot.uids("INBOX")) == 3


def test_restart_keeps_mailboxes_and_ports(dovecot: Dovecot) -> None:
    uid = dovecot.append("INBOX", MAIL)
    ports, validity = (dovecot.port, dovecot.imaps_port), dovecot.uidvalidity("INBOX")
    dovecot.restart()
    assert (dovecot.port, dovecot.imaps_port) == ports
    assert dovecot.uids("INBOX") == [uid]
    assert dovecot.uidvalidity("INBOX") == validity


def test_killed_server_refuses_connections_until_started(dovecot: Dovecot) -> None:
    uid = dovecot.append("INBOX", MAIL)
    dovecot.kill()
    with pytest.raises(ConnectionRefusedError):
        imaplib.IMAP4("127.0.0.1", dovecot.port)
    dovecot.start()
    assert dovecot.uids("INBOX") == [uid]


@pytest.mark.parametrize("name", ["Entwürfe", "Gesendete Objekte", "Kunden & Partner"])
def test_unicode_folder_names(dovecot: Dovecot, name: str) -> None:
    dovecot.create_folder(name)
    uid = dovecot.append(name, MAIL)
    assert dovecot.uids(name) == [uid]
    with imaplib.IMAP4("127.0.0.1", dovecot.port) as imap:
        imap.login(dovecot.user, dovecot.password)
        listed = b"\n".join(line for line in imap.lsub()[1] if isinstance(line, bytes))
    assert imap_utf7(name).encode() in listed


def test_imap_utf7_matches_rfc_3501() -> None:
    assert imap_utf7("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert imap_utf7("Entwürfe") == "Entw&APw-rfe"
    assert imap_utf7("A&B") == "A&-B"


def test_added_user_can_log_in_at_once(dovecot: Dovecot) -> None:
    dovecot.add_user("bob", "bob-secret")
    uid = dovecot.append("INBOX", MAIL, user="bob")
    assert dovecot.uids("INBOX", user="bob") == [uid]
    assert dovecot.uids("INBOX") == []


def test_xoauth2_login_with_the_known_token_only(dovecot: Dovecot) -> None:
    with imaplib.IMAP4("127.0.0.1", dovecot.port) as imap:
        assert imap.authenticate("XOAUTH2", lambda _: xoauth2(dovecot.user, dovecot.oauth_token))[0] == "OK"
    old = dovecot.oauth_token
    dovecot.rotate_oauth_token()
    with imaplib.IMAP4("127.0.0.1", dovecot.port) as imap, pytest.raises(imaplib.IMAP4.error):
        imap.authenticate("XOAUTH2", lambda _: xoauth2(dovecot.user, old))


async def test_aioimaplib_idle_sees_a_new_message(dovecot: Dovecot) -> None:
    lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
    # IMAP4_SSL takes no conn_lost_cb; IMAP4 with an ssl_context is the same client.
    client = aioimaplib.IMAP4("localhost", dovecot.imaps_port, ssl_context=trusting(dovecot.ca_file),
                              conn_lost_cb=lambda exc: lost.done() or lost.set_result(exc))
    await client.wait_hello_from_server()
    assert (await client.login(dovecot.user, dovecot.password)).result == "OK"
    await client.select("INBOX")
    idle = await client.idle_start(timeout=5)
    await asyncio.to_thread(dovecot.append, "INBOX", MAIL)
    pushed = await client.wait_server_push(timeout=5)
    client.idle_done()
    await asyncio.wait_for(idle, 5)
    await client.logout()
    # aioimaplib leaves closing to the server; a test ending first leaks the transport.
    await asyncio.wait_for(lost, 5)
    assert any(b"EXISTS" in line for line in pushed if isinstance(line, bytes))


# -- SMTP -------------------------------------------------------------------------


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "service@example.com", "kunde@example.com", "Ihr Angebot"
    mail.set_content("Guten Tag")
    return mail


async def send_over_tls(**options: Any) -> None:
    """Send message() and wait until the socket is really closed.

    Closing a TLS connection in asyncio cannot be awaited: the close_notify exchange ends some loop
    iterations later. A test that returns first leaves the raw transport open, and its
    ResourceWarning then fails whichever test runs at the next garbage collection (seen in about
    one run in ten under load)."""
    client = aiosmtplib.SMTP(**options)
    async with client:
        assert client.transport is not None
        raw_socket = client.transport.get_extra_info("socket")
        await client.send_message(message())
    async with asyncio.timeout(5):
        while raw_socket.fileno() != -1:
            await asyncio.sleep(0.005)


async def test_smtp_plain_with_auth_records_the_message(smtp_server: SmtpServer) -> None:
    await aiosmtplib.send(message(), hostname="127.0.0.1", port=smtp_server.port,
                          username=smtp_server.user, password=smtp_server.password, start_tls=False)
    [received] = smtp_server.messages
    assert (received.mail_from, received.rcpt_tos, received.login) == (
        "service@example.com", ["kunde@example.com"], smtp_server.user)
    assert b"Subject: Ihr Angebot" in received.content


async def test_smtp_auth_login_mechanism(smtp_server: SmtpServer) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_server.port, start_tls=False) as client:
        await client.ehlo()  # unlike login(), auth_login() does not say EHLO itself
        await client.auth_login(str(smtp_server.user), str(smtp_server.password))
        await client.send_message(message())
    assert len(smtp_server.messages) == 1


async def test_smtp_refuses_mail_without_auth_and_wrong_password(smtp_server: SmtpServer) -> None:
    with pytest.raises(aiosmtplib.SMTPSenderRefused):
        await aiosmtplib.send(message(), hostname="127.0.0.1", port=smtp_server.port, start_tls=False)
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        await aiosmtplib.send(message(), hostname="127.0.0.1", port=smtp_server.port,
                              username=smtp_server.user, password="wrong", start_tls=False)
    assert smtp_server.messages == []


async def test_smtp_xoauth2(smtp_server: SmtpServer) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_server.port, start_tls=False) as client:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await client.auth_xoauth2(str(smtp_server.user), "expired")
        await client.auth_xoauth2(str(smtp_server.user), str(smtp_server.oauth_token))
        await client.send_message(message())
    assert smtp_server.messages[0].login == smtp_server.user


async def test_smtp_starttls_required_and_verified(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory(tls="starttls")
    with pytest.raises(aiosmtplib.SMTPException):
        await aiosmtplib.send(message(), hostname="127.0.0.1", port=server.port,
                              username=server.user, password=server.password, start_tls=False)
    await send_over_tls(hostname="localhost", port=server.port, start_tls=True,
                        tls_context=trusting(server.ca_file), username=server.user, password=server.password)
    assert len(server.messages) == 1


async def test_smtp_implicit_tls(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory(tls="ssl")
    await send_over_tls(hostname="localhost", port=server.port, use_tls=True,
                        tls_context=trusting(server.ca_file), username=server.user, password=server.password)
    assert len(server.messages) == 1


async def test_smtp_down_at_first_then_up_on_the_same_port(smtp_server_factory: SmtpServerFactory) -> None:
    server = smtp_server_factory(user=None, start=False)
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.send(message(), hostname="127.0.0.1", port=server.port, start_tls=False)
    server.start()
    await aiosmtplib.send(message(), hostname="127.0.0.1", port=server.port, start_tls=False)
    server.stop()
    server.start()
    await aiosmtplib.send(message(), hostname="127.0.0.1", port=server.port, start_tls=False)
    assert len(server.messages) == 2
