"""Connecting: TLS modes, LOGIN and XOAUTH2, Unicode folder names, and `commhub mail test`."""

from __future__ import annotations

import sys

import pytest
from mailbuild import config_file, mail, mailbox
from support.dovecot import Dovecot

from commhub.cli import main
from commhub.mail.imap import ImapError, LoginFailed, imap_session


@pytest.mark.parametrize("tls", ["ssl", "starttls"])
async def test_tls_connections_verify_the_server_with_the_configured_ca(dovecot: Dovecot, tls: str) -> None:
    port = dovecot.imaps_port if tls == "ssl" else dovecot.port
    box = mailbox(dovecot, tls=tls, port=port, host="localhost", ca_file=str(dovecot.ca_file))
    async with imap_session(box) as imap:
        state = await imap.open_folder("INBOX", readonly=True)
    assert state.uidvalidity > 0


async def test_an_untrusted_certificate_is_refused_with_a_hint(dovecot: Dovecot) -> None:
    box = mailbox(dovecot, tls="ssl", port=dovecot.imaps_port, host="localhost")
    with pytest.raises(ImapError, match="not trusted.*ca_file"):
        async with imap_session(box):
            pass


async def test_xoauth2_logs_in_with_a_token_from_a_command(dovecot: Dovecot) -> None:
    command = [sys.executable, "-c", f"print({dovecot.oauth_token!r})"]
    box = mailbox(dovecot, auth="xoauth2", password=None, oauth_token_command=command)
    async with imap_session(box) as imap:
        await imap.open_folder("INBOX", readonly=True)


async def test_a_wrong_password_says_the_server_refused_the_login(dovecot: Dovecot) -> None:
    with pytest.raises(LoginFailed, match="refused by the server"):
        async with imap_session(mailbox(dovecot, password="falsch")):
            pass


async def test_folder_names_are_sent_in_modified_utf7(dovecot: Dovecot) -> None:
    dovecot.create_folder("Entwürfe & Co")
    dovecot.append("Entwürfe & Co", mail(1))
    async with imap_session(mailbox(dovecot)) as imap:
        state = await imap.open_folder("Entwürfe & Co", readonly=True)
        names = await imap.folders()
    assert state.exists == 1
    assert "Entwürfe & Co" in names


def _config(tmp_path, dovecot: Dovecot, password: str, folders: list[str] | None = None) -> str:  # type: ignore[no-untyped-def]
    return str(config_file(tmp_path, dovecot, password=password, folders=folders or ["INBOX"]))


def test_mail_test_reports_login_folders_and_capabilities(dovecot: Dovecot, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    dovecot.append("INBOX", mail(1))
    assert main(["mail", "test", "vertrieb", "--config", _config(tmp_path, dovecot, dovecot.password)]) == 0
    out = capsys.readouterr().out
    assert "login: ok" in out
    assert "IDLE: yes" in out
    assert "folder 'INBOX': 1 messages" in out


def test_mail_test_names_what_is_wrong(dovecot: Dovecot, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, dovecot, "falsch")
    assert main(["mail", "test", "vertrieb", "--config", config]) == 1
    assert "FAILED: login as alice refused by the server" in capsys.readouterr().out

    config = _config(tmp_path, dovecot, dovecot.password, folders=["INBOX", "Angebote"])
    assert main(["mail", "test", "vertrieb", "--config", config]) == 1
    assert "folder 'Angebote': MISSING" in capsys.readouterr().out

    dovecot.stop()
    assert main(["mail", "test", "vertrieb", "--config", config]) == 1
    assert "cannot connect" in capsys.readouterr().out


def test_mail_test_of_an_unknown_mailbox_lists_the_known_ones(dovecot: Dovecot, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["mail", "test", "einkauf", "--config", _config(tmp_path, dovecot, dovecot.password)]) == 2
    assert "no mailbox named 'einkauf'" in capsys.readouterr().err


async def test_a_folder_of_thousands_of_messages_is_listed_in_one_response(dovecot: Dovecot) -> None:
    """Thousands of FETCH lines in one read: stock aioimaplib recurses once per line (RecursionError)
    and rescans the response on every line; the reader in commhub/mail/imap.py does neither."""
    from mailbuild import append_many
    append_many(dovecot, "INBOX", [b"Subject: %d\r\n\r\nx\r\n" % n for n in range(4000)])
    async with imap_session(mailbox(dovecot)) as imap:
        await imap.open_folder("INBOX", readonly=True)
        sizes = await imap.sizes_from(1)
        fetched = await imap.fetch([uid for uid, _ in sizes[:2000]])
    assert [uid for uid, _ in sizes] == list(range(1, 4001))
    assert len(fetched) == 2000 and fetched[1] == b"Subject: 0\r\n\r\nx\r\n"
