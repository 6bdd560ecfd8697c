"""Realistic business mail for the tests, as raw bytes, and a mailbox configured for the test Dovecot."""

from __future__ import annotations

import imaplib
import re
from email.message import EmailMessage
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, make_msgid
from pathlib import Path

from support.dovecot import Dovecot

from commhub.settings import MailboxSettings

START = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)


def mail(number: int = 0, *, sender: str = "Erika Muster <erika.muster@muster-gmbh.de>",
         to: str = "Vertrieb <vertrieb@example.de>", cc: str | None = None, subject: str | None = None,
         text: str | None = None, message_id: str | None = "auto", in_reply_to: str | None = None,
         attachment: bytes | None = None, html: str | None = None, headers: dict[str, str] | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject if subject is not None else f"Anfrage Angebot Nr. {number}"
    message["Date"] = format_datetime(START + timedelta(minutes=number))
    if message_id == "auto":
        message_id = f"<test-{number}-{make_msgid().strip('<>')}>"
    if message_id:
        message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text if text is not None else
                        f"Sehr geehrte Damen und Herren,\n\nbitte senden Sie uns ein Angebot über {number} Stück.\n\n"
                        "Mit freundlichen Grüßen\nErika Muster\nMuster GmbH · Hauptstraße 5 · 10115 Berlin\n")
    if html:
        message.add_alternative(html, subtype="html")
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="pdf", filename=f"Angebot {number}.pdf")
    return message.as_bytes()


def mailbox(dovecot: Dovecot, *, folders: list[str] | None = None, **options: object) -> MailboxSettings:
    values: dict[str, object] = {
        "name": "vertrieb", "host": "127.0.0.1", "port": dovecot.port, "tls": "none",
        "username": dovecot.user, "password": dovecot.password, "folders": folders or ["INBOX"],
        "addresses": ["vertrieb@example.de"], "timeout_seconds": 10,
    }
    values.update(options)
    return MailboxSettings.model_validate(values)


def config_file(directory: Path, dovecot: Dovecot, **mailbox: object) -> Path:
    """A commhub.toml for CLI runs: a SQLite file in `directory`, the mailbox `vertrieb` on the test
    Dovecot; `mailbox` overrides or adds its keys (values written as TOML by repr, fine for str/int/list)."""
    keys: dict[str, object] = {"name": "vertrieb", "host": "127.0.0.1", "port": dovecot.port, "tls": "none",
                               "username": dovecot.user, "password": dovecot.password, **mailbox}
    lines = ["[database]", f'url = "sqlite+aiosqlite:///{directory / "c.db"}"', "[logging]", 'level = "warning"',
             "[[mailboxes]]"] + [f"{key} = {_toml(value)}" for key, value in keys.items()]
    path = directory / "commhub.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return str(value)


def append_many(dovecot: Dovecot, folder: str, messages: list[bytes]) -> None:
    """APPEND many messages fast: MULTIAPPEND (RFC 3502) with non-synchronizing literals (RFC 7888),
    hundreds per command, instead of a round trip per message and per `+` continuation."""
    with imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=60) as imap:
        imap.login(dovecot.user, dovecot.password)
        for start in range(0, len(messages), 200):
            tag = f"M{start}".encode()
            parts = [tag + b" APPEND " + _quoted(folder)]
            for raw in messages[start:start + 200]:
                raw = re.sub(rb"\r?\n", b"\r\n", raw)  # IMAP wants CRLF, as imaplib's append would make it
                parts += [b" {%d+}\r\n" % len(raw), raw]
            imap.send(b"".join(parts) + b"\r\n")
            while not (line := imap.readline()).startswith(tag):
                if not line:
                    raise RuntimeError("Dovecot closed the connection during APPEND")
            if not line.startswith(tag + b" OK"):
                raise RuntimeError(f"APPEND refused: {line!r}")


def _quoted(folder: str) -> bytes:
    return b'"' + folder.encode("ascii").replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
