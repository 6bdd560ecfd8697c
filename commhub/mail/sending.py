"""Composing a message commhub sends, and handing it to the SMTP server (aiosmtplib)."""

from __future__ import annotations

import email.policy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr

import aiosmtplib

from commhub.mail.credentials import oauth_token
from commhub.mail.imap import tls_context
from commhub.settings import SmtpSettings


class SendError(Exception):
    """The SMTP server did not take the message (the outbox retries it)."""


class ComposeError(ValueError):
    """The request cannot become a message (names the field)."""


@dataclass(slots=True)
class Draft:
    to: list[str]
    subject: str
    text: str
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    html: str | None = None
    in_reply_to: str | None = None  # the Message-ID answered
    references: list[str] = field(default_factory=list)


def _addresses(values: list[str], name: str) -> list[str]:
    """Each value as a header address; the first one that is not an address is named in the error."""
    found = []
    for value in values:
        parsed = getaddresses([value])
        for display, address in parsed:
            local, _, domain = address.strip().rpartition("@")
            if not local or "." not in domain or any(c in address for c in " \r\n<>"):
                parsed = []
                break
            try:
                found.append(str(HeaderAddress(display_name=display, addr_spec=address.strip())))
            except (ValueError, IndexError):
                parsed = []
                break
        if not parsed:
            raise ComposeError(f"{name}: {value.strip()!r} is not an email address")
    return found


def compose(draft: Draft, sender: str) -> tuple[bytes, str]:
    """The message as bytes (Bcc kept: this is the sender's copy) and its Message-ID."""
    if not draft.to and not draft.cc and not draft.bcc:
        raise ComposeError("to: at least one recipient is needed")
    if "\n" in draft.subject or "\r" in draft.subject:
        raise ComposeError("subject: must be one line")
    sender_address = parseaddr(sender)[1]
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    for header, values in (("To", draft.to), ("Cc", draft.cc), ("Bcc", draft.bcc)):
        if values:
            message[header] = ", ".join(_addresses(values, header.lower()))
    message["Subject"] = draft.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message_id = make_msgid(domain=sender_address.rpartition("@")[2] or "commhub.invalid")
    message["Message-ID"] = message_id
    if draft.in_reply_to:
        message["In-Reply-To"] = draft.in_reply_to
        message["References"] = " ".join([*draft.references, draft.in_reply_to])
    message.set_content(draft.text)
    if draft.html:
        message.add_alternative(draft.html, subtype="html")
    return message.as_bytes(), message_id


def envelope(raw: bytes) -> tuple[str, list[str], bytes]:
    """Sender, every recipient (Bcc included), and the bytes to transmit (Bcc removed)."""
    message = BytesParser(policy=email.policy.SMTP).parsebytes(raw)
    sender = parseaddr(str(message.get("From", "")))[1]
    recipients = [address for _, address in getaddresses(
        [str(v) for h in ("To", "Cc", "Bcc") for v in message.get_all(h, [])]) if address]
    del message["Bcc"]
    return sender, list(dict.fromkeys(recipients)), message.as_bytes()


async def transmit(settings: SmtpSettings, raw: bytes) -> None:
    """Deliver to the configured SMTP server; raise SendError with the server's reason."""
    if not settings.host:
        raise SendError("no [smtp] host configured")
    sender, recipients, wire = envelope(raw)
    credentials: dict[str, object] = {}
    if settings.auth == "xoauth2":
        token = await oauth_token(settings)

        async def token_generator() -> str:
            return token
        credentials = {"username": settings.username, "oauth_token_generator": token_generator}
    elif settings.username:
        credentials = {"username": settings.username,
                       "password": settings.password.get_secret_value() if settings.password else ""}
    try:
        await aiosmtplib.send(
            wire, sender=sender, recipients=recipients, hostname=settings.host, port=settings.smtp_port,
            use_tls=settings.tls == "ssl", start_tls=settings.tls == "starttls",
            tls_context=tls_context(settings.ca_file) if settings.tls != "none" else None,
            timeout=settings.timeout_seconds, **credentials)  # type: ignore[arg-type]
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise SendError("recipients refused: " + "; ".join(f"{r.message}" for r in exc.recipients)) from None
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise SendError(f"login refused by the SMTP server: {exc.code} {exc.message}") from None
    except aiosmtplib.SMTPResponseException as exc:
        raise SendError(f"the SMTP server said {exc.code} {exc.message}") from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise SendError(f"{settings.host}:{settings.smtp_port}: {type(exc).__name__}: {exc}") from None
