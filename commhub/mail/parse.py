"""One raw email in, what commhub stores out: decoded headers, body text, attachments, flags.

Speed decides the design. Parsing is the bottleneck of an IMAP import (IMAP-NOTES: the stdlib's
`policy.default` costs about 1,900 µs per message, compat32 about 180 µs), so the MIME tree comes
from the compat32 parser, fed a masked copy of the message that spares it two avoidable costs
(long bodies read line by line, a regex compiled per boundary; see masking.py), and only the fields
commhub keeps are decoded, here, with fast paths for the common shapes (plain address lists,
unencoded parameters) and the stdlib for the rest.

Robustness: anything that looks like a message gives a result; every defect found (unknown charset,
missing boundary, broken base64, ...) becomes a short note in `ParsedMail.problems`, never an
exception. Every string handed out has passed `clean_text`, because PostgreSQL rejects U+0000.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import MessageError
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime

from commhub.mail.charsets import clean_text, decode, from_8bit, note
from commhub.mail.html_text import html_to_text
from commhub.mail.masking import Masked, mask, unbase64


@dataclass(frozen=True, slots=True)
class Address:
    name: str       # display name, decoded ("" if none)
    address: str    # trimmed, lower case, contains "@"


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str            # decoded; "" if none
    content_type: str        # lower case, e.g. "application/pdf"
    data: bytes              # decoded payload
    content_id: str | None   # without <>, for inline images
    inline: bool             # Content-Disposition inline, or a part with a Content-ID in multipart/related


@dataclass(slots=True)
class ParsedMail:
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    subject: str
    sent_at: datetime | None
    from_: list[Address]
    sender: list[Address]
    reply_to: list[Address]
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    text: str
    html: str | None
    attachments: list[Attachment]
    flags: set[str]
    problems: list[str]
    headers_only: bool = False


class UnparsableMail(Exception):
    """The input is not a message at all (empty, or binary without a single header field)."""


class _RawHeaderPolicy(Compat32):
    """compat32, except that header values come back exactly as parsed.

    compat32 wraps a value holding raw 8-bit bytes in a `Header` whose str() turns the bytes into
    U+FFFD, which would lose 8-bit filenames and names that we can still decode (utf-8, else cp1252).
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


# CRLF and no refolding: an attached message is written back out as the IMAP server delivered it.
_POLICY = _RawHeaderPolicy(linesep="\r\n", max_line_length=None)
_PARSER = BytesParser(policy=_POLICY)
# What the stdlib parser raises on some inputs (found by fuzzing): TypeError from RFC 2231 parameters
# given both as name* and name*0, UnicodeError from a surrogate in an RFC 2231 charset, ValueError
# from a continuation number too long for int(). RecursionError (deep nesting) is handled apart.
_PARSER_ERRORS = (ValueError, TypeError, LookupError, IndexError)
_MAX_DEPTH = 40  # real mail nests MIME parts fewer than 10 deep; more is an attack or a loop


# --- headers ---------------------------------------------------------------------------------------

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?(.*?)\?=")
_MSG_ID = re.compile(r"<([^<>]*)>")
_Headers = dict[str, list[str]]


def _header_map(msg: Message) -> _Headers:
    headers: _Headers = {}
    for name, value in msg.raw_items():
        headers.setdefault(name.strip().lower(), []).append(value)
    return headers


def _first(headers: _Headers, name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""


def _unfold(value: str) -> str:
    if "\n" in value or "\r" in value:
        value = _FOLD.sub("", value).replace("\r", " ").replace("\n", " ")
    return value.replace("\t", " ").strip()


def _decode_header(value: str, problems: list[str]) -> str:
    """Header text with RFC 2047 words decoded in any charset and raw 8-bit bytes recovered."""
    value = _unfold(value)
    if "=?" not in value:
        return clean_text(from_8bit(value, problems))
    out: list[str] = []
    run, run_charset, position = b"", "", 0
    for word in _ENCODED_WORD.finditer(value):
        gap = value[position:word.start()]
        # RFC 2047 §6.2: whitespace between two encoded words is not displayed.
        between_words = position > 0 and (not gap or gap.isspace())
        charset = word.group(1).split("*", 1)[0]  # RFC 2231 §5 allows a language: utf-8*de
        # Adjacent words in one charset are decoded together: encoders split multi-byte characters.
        if run and (not between_words or charset.lower() != run_charset.lower()):
            out.append(decode(run, run_charset, problems))
            run = b""
        if gap and not between_words:
            out.append(from_8bit(gap, problems))
        run += _word_bytes(word.group(2), word.group(3), problems)
        run_charset, position = charset, word.end()
    if run:
        out.append(decode(run, run_charset, problems))
    out.append(from_8bit(value[position:], problems))
    return clean_text("".join(out))


def _word_bytes(encoding: str, text: str, problems: list[str]) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if encoding in "qQ":
        return binascii.a2b_qp(raw, header=True)
    data, well_formed = unbase64(raw)
    if not well_formed:
        note(problems, "malformed base64 in a header")
    return data


def _msg_ids(values: list[str] | None, problems: list[str]) -> list[str]:
    """The msg-ids in header values, in order, whitespace removed, each once."""
    ids: list[str] = []
    for value in values or ():
        for inner in _MSG_ID.findall(value) or value.replace(",", " ").split():
            compact = "".join(inner.split()).strip("<>")
            msg_id = clean_text(from_8bit(f"<{compact}>", problems)) if compact else ""
            if msg_id and msg_id not in ids:
                ids.append(msg_id)
    return ids


# Most address lists are plain `addr`, `Name <addr>` or `"Last, First" <addr>`: a regex reads those
# ten times faster than getaddresses, which walks the header character by character. Anything
# else (comments, groups, odd quoting) goes to getaddresses.
_ADDR_SPEC = r"[^\s<>()\[\]\\,;:@\"]+@[^\s<>()\[\]\\,;:@\"]+"
_MAILBOX = re.compile(
    rf'\s*(?:(?:"((?:[^"\\]|\\.)*)"|([^"<>()\[\]\\,;:@]*?))\s*<({_ADDR_SPEC})>|({_ADDR_SPEC}))\s*(?:,|\Z)')
_QUOTED_PAIR = re.compile(r"\\(.)")


def _address_pairs(value: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    position = 0
    while position < len(value):
        found = _MAILBOX.match(value, position)
        if found is None:
            return getaddresses([value])
        quoted, phrase, angle, bare = found.groups()
        if bare:
            pairs.append(("", bare))
        else:
            pairs.append((_QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else " ".join(phrase.split()), angle))
        position = found.end()
    return pairs


def _addresses(values: list[str] | None, problems: list[str]) -> list[Address]:
    found: dict[str, Address] = {}
    for value in values or ():
        try:
            pairs = _address_pairs(_unfold(value))
        except (IndexError, ValueError, TypeError):
            note(problems, "unreadable address list")
            continue
        for name, address in pairs:
            address = clean_text(from_8bit(address, problems)).strip().lower()
            if "@" in address and address not in found:
                found[address] = Address(_decode_header(name, problems) if name else "", address)
    return list(found.values())


def _sent_at(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        sent = parsedate_to_datetime(_unfold(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if sent.tzinfo is None:  # "-0000" or no zone at all: UTC is the best guess (RFC 5322 §3.3)
        return sent.replace(tzinfo=UTC)
    try:
        return sent.astimezone(UTC)
    except OverflowError:  # year 9999 east of UTC, year 1 west of it
        return None


# --- MIME parameters -------------------------------------------------------------------------------

_Param = str | tuple[str | None, str | None, str]  # a value, or RFC 2231's (charset, language, text)
_PARAM = re.compile(r'([^\s=;"]+)\s*=\s*("[^"]*"|[^;]*)')


@dataclass(slots=True)
class _Part:
    """One MIME part with the headers this module reads, looked up once (Message.get scans them all)."""

    msg: Message
    fields: dict[str, str]  # the first value of each header, by lower-case name
    ctype: str
    params: dict[str, _Param]

    @classmethod
    def read(cls, msg: Message, problems: list[str]) -> _Part:
        fields: dict[str, str] = {}
        for name, value in msg.raw_items():
            fields.setdefault(name.lower(), value)
        if "content-type" not in fields:
            return cls(msg, fields, msg.get_default_type(), {})
        ctype, params = _params(msg, fields, "content-type", problems)
        # compat32's reading, so that this module sees the structure the parser built.
        return cls(msg, fields, ctype if ctype.count("/") == 1 else "text/plain", params)

    def disposition(self, problems: list[str]) -> tuple[str, dict[str, _Param]]:
        disposition, params = _params(self.msg, self.fields, "content-disposition", problems)
        return _token(disposition), params

    def filename(self, disposition_params: dict[str, _Param], problems: list[str]) -> str:
        return _filename(disposition_params.get("filename") or self.params.get("name"), problems)

    def content_id(self, problems: list[str]) -> str | None:
        value = self.fields.get("content-id")
        if not value:
            return None
        return clean_text(from_8bit("".join(value.split()).strip("<>"), problems)) or None


def _params(msg: Message, fields: dict[str, str], header: str,
            problems: list[str]) -> tuple[str, dict[str, _Param]]:
    """The lower-case value before the first ';' of a Content-Type-like header, and its parameters."""
    value = fields.get(header)
    if not value:
        return "", {}
    main, _, rest = value.partition(";")
    params: dict[str, _Param] = {}
    if "*" in rest or "\\" in rest:  # RFC 2231 or quoted pairs: the stdlib's slower, complete reading
        try:
            for name, param in msg.get_params([], header)[1:]:
                params.setdefault(name.strip().lower(), param)
        except _PARSER_ERRORS:  # e.g. both name* and name*0: the stdlib's sort fails
            note(problems, f"unreadable {header} parameters")
    else:
        for found in _PARAM.finditer(rest):
            param = found.group(2).strip()
            quoted = len(param) > 1 and param[0] == param[-1] == '"'
            params.setdefault(found.group(1).lower(), param[1:-1] if quoted else param)
    return main.strip().lower(), params


def _text_param(params: dict[str, _Param], name: str) -> str | None:
    value = params.get(name)
    return value[2] if isinstance(value, tuple) else value


def _filename(value: _Param | None, problems: list[str]) -> str:
    if not value:
        return ""
    if isinstance(value, tuple):  # RFC 2231: the text is %-decoded into latin-1 code points
        charset, _language, text = value
        try:
            data = text.encode("latin-1", "surrogateescape")
        except UnicodeEncodeError:
            data = text.encode("utf-8", "surrogateescape")
        return clean_text(_unfold(decode(data, charset or None, problems)))
    # Outlook and Thunderbird put RFC 2047 words into quoted parameters; old mailers put raw 8-bit bytes.
    return _decode_header(value, problems)


# --- flags -----------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*([\w-]+)")


def _token(value: str) -> str:
    found = _TOKEN.match(value)
    return found.group(1).lower() if found else ""


def _flags(headers: _Headers, senders: list[Address], reports: list[str]) -> set[str]:
    flags: set[str] = set()
    precedence = _token(_first(headers, "precedence"))
    auto_submitted = _token(_first(headers, "auto-submitted"))
    # X-Auto-Response-Suppress asks *others* not to answer: it says nothing about this message.
    if (auto_submitted not in ("", "no") or precedence in ("auto_reply", "auto-reply")
            or any(_token(_first(headers, name)) != "no" for name in ("x-autoreply", "x-autorespond")
                   if name in headers)):
        flags.add("auto_reply")
    null_return_path = "".join(_first(headers, "return-path").split()) == "<>"
    if ("delivery-status" in reports
            or any(sender.address.split("@", 1)[0] in ("mailer-daemon", "postmaster") for sender in senders)
            # A read receipt (MDN) also comes from <>, but the address it answers is fine.
            or null_return_path and any(kind != "disposition-notification" for kind in reports)):
        flags.add("bounce")
    if precedence in ("bulk", "junk", "list") or "list-id" in headers or "list-unsubscribe" in headers:
        flags.add("bulk")
    return flags


# --- bodies ----------------------------------------------------------------------------------------

_DEFECTS = {
    "NoBoundaryInMultipartDefect": "multipart without boundary",
    "StartBoundaryNotFoundDefect": "multipart boundary not found",
    "CloseBoundaryNotFoundDefect": "multipart end boundary missing",
    "FirstHeaderLineIsContinuationDefect": "header block starts with a continuation line",
    "MisplacedEnvelopeHeaderDefect": "misplaced 'From ' line in the header",
    "MissingHeaderBodySeparatorDefect": "malformed header line; the rest was read as body",
    "MultipartInvariantViolationDefect": "multipart without parts",
    "InvalidMultipartContentTransferEncodingDefect": "multipart with a transfer encoding",
}
_BOUNDARY_LINE = re.compile(r"^--([^\s\"][^\r\n\"]{0,69}?)[ \t]*\r?$", re.MULTILINE)
_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?([\w.:-]{1,40})", re.IGNORECASE)


@dataclass(slots=True)
class _Body:
    problems: list[str]
    masked: Masked  # to undo in every byte string read from the parse
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)  # kinds of report found, for the bounce flag


def _walk(part: Message, body: _Body, depth: int, related: bool) -> None:
    for defect in part.defects:
        note(body.problems, _DEFECTS.get(type(defect).__name__, type(defect).__name__))
    if depth > _MAX_DEPTH:
        note(body.problems, f"MIME parts nested deeper than {_MAX_DEPTH} were skipped")
        return
    mime = _Part.read(part, body.problems)
    payload = _raw_payload(part)
    if mime.ctype.startswith("multipart/"):
        if mime.ctype == "multipart/report":  # RFC 6522: delivery-status is a bounce, a receipt is not
            body.reports.append((_text_param(mime.params, "report-type") or "unknown").lower())
        children = payload if isinstance(payload, list) else _salvage(payload, mime.ctype, body)
        _multipart(mime.ctype, children, body, depth, related)
    elif isinstance(payload, list):  # message/*: the parser read the content as messages
        _attach_messages(mime, payload, body, related)
        if mime.ctype == "message/delivery-status":
            body.reports.append("delivery-status")
    else:
        _leaf(mime, body, related)


def _multipart(ctype: str, children: list[Message], body: _Body, depth: int, related: bool) -> None:
    if ctype != "multipart/alternative":
        for child in children:
            _walk(child, body, depth + 1, related or ctype == "multipart/related")
        return
    # RFC 2046 §5.1.4: the last alternative is the richest; keep the last plain and the last HTML one.
    plain: list[str] = []
    markup: list[str] = []
    for child in children:
        version = _Body(body.problems, body.masked, reports=body.reports)
        _walk(child, version, depth + 1, related)
        plain, markup = version.plain or plain, version.html or markup
        body.attachments.extend(version.attachments)
    body.plain.extend(plain)
    body.html.extend(markup)


def _salvage(payload: object, ctype: str, body: _Body) -> list[Message]:
    """The parts of a multipart whose boundary is missing or wrong, guessed from its first '--' line."""
    raw = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    text = body.masked.restore(raw, runs=False).decode("utf-8", "surrogateescape")  # the boundaries as sent
    guess = _BOUNDARY_LINE.search(text)
    if guess is not None:
        header = f'Content-Type: {ctype}; boundary="{guess.group(1)}"\r\n\r\n'
        try:
            children = _raw_payload(_PARSER.parsebytes((header + text).encode("utf-8", "surrogateescape")))
        except (RecursionError, *_PARSER_ERRORS):
            children = None
        if isinstance(children, list) and children:
            return children
    note(body.problems, "multipart body could not be split into parts; kept as text")
    return [_PARSER.parsebytes(b"Content-Type: text/plain\r\n\r\n" + text.encode("utf-8", "surrogateescape"))]


def _leaf(part: _Part, body: _Body, related: bool) -> None:
    disposition, disposition_params = part.disposition(body.problems)
    filename = part.filename(disposition_params, body.problems)
    data = _payload_bytes(part, filename or part.ctype, body)
    if part.ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        charset = _text_param(part.params, "charset")
        if part.ctype == "text/html" and charset is None:
            declared = _META_CHARSET.search(data, 0, 4096)
            charset = declared.group(1).decode("ascii") if declared else None
        (body.plain if part.ctype == "text/plain" else body.html).append(decode(data, charset, body.problems))
        return
    content_id = part.content_id(body.problems)
    inline = disposition == "inline" or (related and content_id is not None)
    body.attachments.append(Attachment(filename, clean_text(part.ctype), data, content_id, inline))


def _attach_messages(part: _Part, messages: list[Message], body: _Body, related: bool) -> None:
    """An attached mail (message/rfc822) or report part, kept whole as its own bytes."""
    try:
        data = body.masked.restore(b"".join(message.as_bytes() for message in messages), crlf=True)
    except (MessageError, LookupError, UnicodeError, ValueError, TypeError, RecursionError):
        note(body.problems, f"attached {part.ctype} could not be written out")
        data = b""
    disposition, disposition_params = part.disposition(body.problems)
    filename = part.filename(disposition_params, body.problems)
    if not filename and part.ctype == "message/rfc822" and messages:
        filename = (_decode_header(messages[0].get("subject") or "", body.problems) or "message") + ".eml"
    content_id = part.content_id(body.problems)
    inline = disposition == "inline" or (related and content_id is not None)
    body.attachments.append(Attachment(filename, clean_text(part.ctype), data, content_id, inline))


def _raw_payload(msg: Message) -> object:
    """The body as parsed: a str (8-bit bytes surrogate-escaped) or a list of parts.

    Not get_payload(): for 8-bit text it already decodes with the declared charset and replaces
    whatever does not fit, which loses the bytes this module can still read (utf-8, cp1252).
    """
    return getattr(msg, "_payload", None)


def _payload_bytes(part: _Part, what: str, body: _Body) -> bytes:
    payload = _raw_payload(part.msg)
    if not isinstance(payload, str):
        return b""
    raw = body.masked.restore(payload.encode("utf-8", "surrogateescape"))
    encoding = _token(part.fields.get("content-transfer-encoding") or "")
    if encoding == "base64":
        data, well_formed = unbase64(raw)
        if not well_formed:
            note(body.problems, f"malformed base64 in {what[:60]}")
        return data
    if encoding == "quoted-printable":
        return binascii.a2b_qp(raw)
    if encoding in ("x-uuencode", "uuencode", "uue", "x-uue"):
        part.msg.set_payload(raw.decode("utf-8", "surrogateescape"))
        decoded = part.msg.get_payload(decode=True)
        return decoded if isinstance(decoded, bytes) else raw
    return raw


# --- public API ------------------------------------------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def parse_message(raw: bytes) -> ParsedMail:
    """Everything commhub keeps of one message; best effort, defects noted in `problems`."""
    if not raw or raw.isspace():
        raise UnparsableMail("empty input")
    masked = mask(raw)
    problems: list[str] = []
    msg = _parse(masked.raw, problems)
    readable = msg is not None
    if msg is None:
        msg = _PARSER.parsebytes(_HEADER_END.split(raw, 1)[0], headersonly=True)
    headers = _header_map(msg)
    if not headers:
        if b"\x00" in raw[:1024]:
            raise UnparsableMail("no header fields and binary content: not a message")
        problems.append("no header fields")
    body = _Body(problems, masked)
    if readable:
        _walk(msg, body, 0, related=False)
    return _build(headers, body, headers_only=False)


def _parse(raw: bytes, problems: list[str]) -> Message | None:
    """The MIME tree; if the parser fails on the structure, the message with its body as one text."""
    try:
        return _PARSER.parsebytes(raw)
    except RecursionError:  # guessing the parts would recurse as deep again: keep the header only
        note(problems, "MIME structure nested too deeply; body not read")
        return None
    except _PARSER_ERRORS as exc:
        note(problems, f"MIME structure unreadable ({type(exc).__name__}); parts guessed")
        return _PARSER.parsebytes(raw, headersonly=True)


def parse_headers(raw_headers: bytes) -> ParsedMail:
    """The header of a message too large to fetch whole: headers_only=True, empty body."""
    if not raw_headers or raw_headers.isspace():
        raise UnparsableMail("empty input")
    msg = _PARSER.parsebytes(raw_headers, headersonly=True)
    headers = _header_map(msg)
    if not headers:
        raise UnparsableMail("no header fields")
    body = _Body([], Masked(raw_headers))
    top = _Part.read(msg, body.problems)
    if top.ctype == "multipart/report":
        body.reports.append((_text_param(top.params, "report-type") or "unknown").lower())
    return _build(headers, body, headers_only=True)


def _build(headers: _Headers, body: _Body, headers_only: bool) -> ParsedMail:
    problems = body.problems
    from_ = _addresses(headers.get("from"), problems)
    sender = _addresses(headers.get("sender"), problems)
    references = _msg_ids(headers.get("references"), problems)
    reply_ids = _msg_ids(headers.get("in-reply-to", [])[:1], problems)
    message_ids = _msg_ids(headers.get("message-id", [])[:1], problems)
    html = clean_text("\n".join(body.html)) if body.html else None
    text = "\n".join(body.plain).replace("\r\n", "\n")
    if html and not text.strip():  # HTML only, or an empty text/plain beside the HTML
        text = html_to_text(html)
    return ParsedMail(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=reply_ids[0] if reply_ids else None,
        references=references,
        subject=_decode_header(_first(headers, "subject"), problems),
        sent_at=_sent_at(_first(headers, "date")),
        from_=from_,
        sender=sender,
        reply_to=_addresses(headers.get("reply-to"), problems),
        to=_addresses(headers.get("to"), problems),
        cc=_addresses(headers.get("cc"), problems),
        bcc=_addresses(headers.get("bcc"), problems),
        text=clean_text(text),
        html=html,
        attachments=body.attachments,
        flags=_flags(headers, from_ + sender, body.reports),
        problems=[clean_text(problem) for problem in problems],
        headers_only=headers_only,
    )


def message_key(parsed: ParsedMail | None, raw: bytes) -> str:
    """The dedup key: the Message-ID, else a hash of the raw bytes (an invented ID would never match)."""
    if parsed is not None and parsed.message_id:
        return parsed.message_id
    return "sha256:" + hashlib.sha256(raw).hexdigest()
