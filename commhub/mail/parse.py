"""One raw email in, what commhub stores out: decoded headers, body text, attachments, flags.

Speed decides the design. Parsing is the bottleneck of an IMAP import (IMAP-NOTES: the stdlib's
`policy.default` costs about 1,900 µs per message, compat32 about 180 µs), so the MIME tree comes
from the compat32 parser, fed a masked copy of the message that spares it two avoidable costs
(long bodies read line by line, a regex compiled per boundary; see `_Masked`), and only the fields
commhub keeps are decoded, here, with fast paths for the common shapes (plain address lists,
unencoded parameters) and the stdlib for the rest.

Robustness: anything that looks like a message gives a result; every defect found (unknown charset,
missing boundary, broken base64, ...) becomes a short note in `ParsedMail.problems`, never an
exception. Every string handed out has passed `clean_text`, because PostgreSQL rejects U+0000.
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import html as html_entities
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import MessageError
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

import nh3


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


# --- text hygiene and charsets ---------------------------------------------------------------------

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_UNSAFE_BYTES = bytes(sorted(set(range(0x20)) - {0x09, 0x0A, 0x0D}))


def clean_text(value: str) -> str:
    """`value` without C0 controls other than tab, LF and CR, and with lone surrogates as U+FFFD."""
    # encode() finds lone surrogates and translate() finds controls, both in C: about 3x faster than
    # a regex search, which counts for every 10 KB body.
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        if len(encoded.translate(None, _UNSAFE_BYTES)) == len(encoded):
            return value
    return _UNSAFE.sub(lambda found: "\ufffd" if found.group() >= "\ud800" else "", value)


# What mail clients mean by these labels (WHATWG Encoding Standard), where Python's codec is narrower.
_LABELS = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
    "shift_jis": "cp932", "x-sjis": "cp932", "iso-8859-8-i": "iso8859-8", "tis-620": "cp874",
    "iso-8859-11": "cp874", "x-mac-roman": "mac-roman",
}
_LABEL = re.compile(r"[\"'\s]*([\w.:-]{1,64})")
# Codecs whose ASCII bytes are not ASCII text (ISO-2022-JP is 7-bit with escape sequences).
_NOT_ASCII_COMPATIBLE = ("utf-16", "utf-32", "utf-7", "iso2022", "hz")


@lru_cache(maxsize=256)
def _codec(charset: str) -> str | None:
    """Python's codec name for a declared charset; None if unknown or not a text encoding."""
    found = _LABEL.match(charset)  # drops quotes and comments: charset=us-ascii (Plain Text)
    label = found.group(1).lower() if found else ""
    try:
        name = codecs.lookup(_LABELS.get(label, label)).name
        b"".decode(name)  # LookupError for bytes-to-bytes codecs: a charset named "base64" or "rot13"
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        return None
    return name


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: a byte that is not UTF-8 is read as cp1252 (U+FFFD for its 5 holes)."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start:error.end].decode("cp1252", "replace"), error.end


codecs.register_error("commhub-cp1252", _cp1252_fallback)


def _decode(data: bytes, charset: str | None, problems: list[str]) -> str:
    """Text from bytes: the declared charset, else UTF-8 with each stray byte read as cp1252.

    Per byte rather than all-or-nothing, because one header or body often mixes both: a UTF-8
    signature under a cp1252 reply, a Subject whose "€" was typed on another machine.
    """
    codec = _codec(charset) if charset else None
    if charset and codec is None:
        _note(problems, f"unknown charset {charset.strip()[:40]!r}")
    if data.isascii() and (codec is None or not codec.startswith(_NOT_ASCII_COMPATIBLE)):
        return data.decode("ascii")
    if codec == "iso8859-1":  # mail software says latin-1 and sends cp1252 (€, „“, –)
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("iso8859-1")
    if codec is not None and codec != "utf-8":
        try:
            return data.decode(codec)
        except UnicodeError:  # not only UnicodeDecodeError: "undefined" and "idna" raise their parent
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        if charset:
            _note(problems, f"text is not valid {charset.strip()[:40]}")
    return data.decode("utf-8", "commhub-cp1252")


def _from_8bit(value: str, problems: list[str]) -> str:
    """Recover raw 8-bit header bytes (the parser surrogate-escapes them) as text."""
    if value.isascii():
        return value
    return _decode(value.encode("utf-8", "surrogateescape"), None, problems)


def _note(problems: list[str], problem: str) -> None:
    if problem not in problems:
        problems.append(problem)


# --- transfer encodings and large bodies -----------------------------------------------------------

_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_BASE64 = bytes(sorted(set(range(256)) - set(_BASE64_ALPHABET)))


def _unbase64(encoded: bytes) -> tuple[bytes, bool]:
    """Decoded bytes and whether the input was well-formed; truncated or dirty input decodes anyway."""
    compact = encoded.translate(None, b" \t\r\n")
    try:
        return binascii.a2b_base64(compact, strict_mode=True), True
    except binascii.Error:
        pass
    letters = compact.translate(None, _NOT_BASE64)
    letters = letters[: len(letters) - (len(letters) % 4 == 1)]  # a lone 6-bit group holds no byte
    return binascii.a2b_base64(letters + b"=" * (-len(letters) % 4)), False


# Two costs of the stdlib parser do not depend on what commhub reads, so the raw message is masked
# before parsing and every byte string read back from the parse (payloads, attached messages) is
# unmasked again: the result is the same as without masking (checked by fuzzing against the plain parse).
#
# 1. It walks every body line by line, about 1 µs a line (7 ms for a 200 KB PDF), though inside a body
#    it only looks for boundaries: lines that start with "--". So each body stretch from a blank line up
#    to the next line starting with "-" becomes one marker line. A stretch that starts like a header or
#    is empty (an attached message may start either way) stays, and so does the line ending before the
#    next boundary, which the parser gives to the boundary. message/delivery-status is the exception
#    (blank lines separate its blocks), so a message with one is not elided.
# 2. It compiles a regex for each multipart's boundary, about 150 µs (more than the rest of the parse)
#    and never reused, since every mail has its own boundaries. So boundaries declared by multipart
#    Content-Type headers are renamed "=_commhub_0_=", "=_commhub_1_=", ..., whose regexes stay in
#    re's cache: in the header, and in each line that the parser would take for their delimiter.
_ELIDE_FROM = 2048
_ELIDE_MIN_RUN = 1024
_MARKER = b"\x00commhub-elided-"
_MARKED = re.compile(rb"\x00commhub-elided-(\d+)\x00")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_HEADER_LIKE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")  # the parser's own test (feedparser.headerRE)
_LINE_END = re.compile(rb"\r\n|\r|\n")
_RENAMED = b"=_commhub_"
_MAX_RENAMED = 64  # renaming costs a pass over the message per boundary; real mail has a handful
_DELIMITER_END = re.compile(rb"(?:--)?[ \t]*(?:\r|\n|\Z)")
# A parameter value as the stdlib reads it when it has no quoted pairs: quoted, or up to ";" or a space.
_BOUNDARY_VALUE = re.compile(rb'[ \t]*=[ \t]*(?:"([ !#-\[\]-~]{1,200})"|([!#-:<-\[\]-~]{1,200}))(?=[ \t\r\n;]|\Z)')


@dataclass(slots=True)
class _Masked:
    raw: bytes  # what the parser reads
    runs: list[bytes] = field(default_factory=list)  # elided body stretches, by marker number
    boundaries: list[tuple[bytes, bytes]] = field(default_factory=list)  # (renamed, original)

    def restore(self, data: bytes, crlf: bool = False, runs: bool = True) -> bytes:
        """`data` (part of the masked message) as it was in the original message.

        crlf: `data` was written out by the stdlib generator, which ends every line with CRLF here.
        runs: False to keep the elided stretches as markers (for bytes that will be parsed again).
        """
        if self.boundaries and _RENAMED in data:
            for renamed, original in self.boundaries:
                data = data.replace(renamed, original)
        if runs and self.runs and _MARKER in data:
            stretches = [_LINE_END.sub(b"\r\n", run) for run in self.runs] if crlf else self.runs
            data = _MARKED.sub(lambda found: stretches[int(found.group(1))], data)
        return data


def _mask(raw: bytes) -> _Masked:
    elided, runs = _elide(raw)
    # Searched for in what the parser will see (inside elided stretches they do no harm): a message
    # crafted to look masked already is parsed as it is.
    if elided.count(_MARKER) != len(runs) or _RENAMED in elided:
        return _Masked(raw)
    lowered = elided.lower()
    if runs and b"delivery-status" in lowered:  # there the parser splits at blank lines too
        elided, runs, lowered = raw, [], raw.lower()
    renamed, boundaries = _rename_boundaries(elided, lowered)
    return _Masked(renamed, runs, boundaries)


def _elide(raw: bytes) -> tuple[bytes, list[bytes]]:
    if len(raw) < _ELIDE_FROM:
        return raw, []
    pieces: list[bytes] = []
    runs: list[bytes] = []
    copied = position = 0
    while (blank := _BLANK_LINE.search(raw, position)) is not None:
        start = blank.end()
        position = _dash_line(raw, start)
        # The line ending before the boundary (or before the end, when a close boundary is missing)
        # stays: the parser takes it off the part.
        end = position - 1 if position == len(raw) and raw.endswith((b"\n", b"\r")) else position
        if raw[end - 1:end + 1] == b"\r\n":
            end -= 1
        if end - start >= _ELIDE_MIN_RUN and raw[start] not in b"\r\n" and not _HEADER_LIKE.match(raw, start):
            pieces += (raw[copied:start], b"%s%d\x00" % (_MARKER, len(runs)))
            runs.append(raw[start:end])
            copied = end
    if not runs:
        return raw, []
    pieces.append(raw[copied:])
    return b"".join(pieces), runs


def _dash_line(raw: bytes, start: int) -> int:
    """Where the line ending before the next line starting with "-" is (the parser also ends a line
    at a lone CR), or the end of `raw`. Searching for "-" alone is fast: base64 never contains it."""
    found = raw.find(b"-", start)
    while found > 0 and raw[found - 1] not in b"\r\n":
        found = raw.find(b"-", found + 1)
    return len(raw) if found < 0 else found - 1


def _rename_boundaries(raw: bytes, lowered: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    names: dict[bytes, bytes] = {}
    pieces: list[bytes] = []
    copied = position = 0
    while (position := lowered.find(b"boundary", position) + 1) > 0 and len(names) < _MAX_RENAMED:
        value = _BOUNDARY_VALUE.match(raw, position + 7)
        if value is None or not _in_multipart_content_type(lowered, position - 1):
            continue
        group = 1 if value.group(1) is not None else 2
        original = value.group(group)
        if original == original.rstrip():  # else get_boundary() would read it otherwise: leave it be
            pieces += (raw[copied:value.start(group)], names.setdefault(original, b"%s%d_=" % (_RENAMED, len(names))))
            copied = value.end(group)
    if not names:
        return raw, []
    pieces.append(raw[copied:])
    return _rename_delimiters(b"".join(pieces), names), [(name, original) for original, name in names.items()]


def _rename_delimiters(raw: bytes, names: dict[bytes, bytes]) -> bytes:
    """`raw` with each delimiter line of a renamed boundary renamed; other lines stay as they are."""
    edits: dict[int, tuple[int, bytes]] = {}  # start of the boundary in the line: (its length, new name)
    for original, name in names.items():
        for line_start in (b"\n--", b"\r--"):  # the parser also ends a line at a lone CR
            needle = line_start + original
            found = raw.find(needle)
            while found >= 0:
                # The parser's own test: "--", the boundary, "--" if closing, blanks, the line end.
                # With two candidates ("abc" closing, "abc--" opening) the longer one is kept.
                if _DELIMITER_END.match(raw, found + len(needle)) and len(original) > edits.get(found + 3, (0,))[0]:
                    edits[found + 3] = (len(original), name)
                found = raw.find(needle, found + len(needle))
    pieces: list[bytes] = []
    copied = 0
    for start in sorted(edits):
        length, name = edits[start]
        pieces += (raw[copied:start], name)
        copied = start + length
    pieces.append(raw[copied:])
    return b"".join(pieces)


def _in_multipart_content_type(lowered: bytes, position: int) -> bool:
    """Whether `position` is a parameter's start in a multipart Content-Type header (folded or not)."""
    line = lowered.rfind(b"\n", 0, position) + 1
    for _ in range(50):  # a continuation line: the header began earlier (but not in a page of indented text)
        if line == 0 or lowered[line] not in b" \t":
            break
        line = lowered.rfind(b"\n", 0, line - 1) + 1
    if not lowered.startswith(b"content-type:", line):
        return False
    header = lowered[line + 13:position]
    return header.lstrip().startswith(b"multipart/") and header.rstrip().endswith(b";")


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
        return clean_text(_from_8bit(value, problems))
    out: list[str] = []
    run, run_charset, position = b"", "", 0
    for word in _ENCODED_WORD.finditer(value):
        gap = value[position:word.start()]
        # RFC 2047 §6.2: whitespace between two encoded words is not displayed.
        between_words = position > 0 and (not gap or gap.isspace())
        charset = word.group(1).split("*", 1)[0]  # RFC 2231 §5 allows a language: utf-8*de
        # Adjacent words in one charset are decoded together: encoders split multi-byte characters.
        if run and (not between_words or charset.lower() != run_charset.lower()):
            out.append(_decode(run, run_charset, problems))
            run = b""
        if gap and not between_words:
            out.append(_from_8bit(gap, problems))
        run += _word_bytes(word.group(2), word.group(3), problems)
        run_charset, position = charset, word.end()
    if run:
        out.append(_decode(run, run_charset, problems))
    out.append(_from_8bit(value[position:], problems))
    return clean_text("".join(out))


def _word_bytes(encoding: str, text: str, problems: list[str]) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if encoding in "qQ":
        return binascii.a2b_qp(raw, header=True)
    data, well_formed = _unbase64(raw)
    if not well_formed:
        _note(problems, "malformed base64 in a header")
    return data


def _msg_ids(values: list[str] | None, problems: list[str]) -> list[str]:
    """The msg-ids in header values, in order, whitespace removed, each once."""
    ids: list[str] = []
    for value in values or ():
        for inner in _MSG_ID.findall(value) or value.replace(",", " ").split():
            compact = "".join(inner.split()).strip("<>")
            msg_id = clean_text(_from_8bit(f"<{compact}>", problems)) if compact else ""
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
            _note(problems, "unreadable address list")
            continue
        for name, address in pairs:
            address = clean_text(_from_8bit(address, problems)).strip().lower()
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
        return clean_text(_from_8bit("".join(value.split()).strip("<>"), problems)) or None


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
            _note(problems, f"unreadable {header} parameters")
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
        return clean_text(_unfold(_decode(data, charset or None, problems)))
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
    masked: _Masked  # to undo in every byte string read from the parse
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)  # kinds of report found, for the bounce flag


def _walk(part: Message, body: _Body, depth: int, related: bool) -> None:
    for defect in part.defects:
        _note(body.problems, _DEFECTS.get(type(defect).__name__, type(defect).__name__))
    if depth > _MAX_DEPTH:
        _note(body.problems, f"MIME parts nested deeper than {_MAX_DEPTH} were skipped")
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
    _note(body.problems, "multipart body could not be split into parts; kept as text")
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
        (body.plain if part.ctype == "text/plain" else body.html).append(_decode(data, charset, body.problems))
        return
    content_id = part.content_id(body.problems)
    inline = disposition == "inline" or (related and content_id is not None)
    body.attachments.append(Attachment(filename, clean_text(part.ctype), data, content_id, inline))


def _attach_messages(part: _Part, messages: list[Message], body: _Body, related: bool) -> None:
    """An attached mail (message/rfc822) or report part, kept whole as its own bytes."""
    try:
        data = body.masked.restore(b"".join(message.as_bytes() for message in messages), crlf=True)
    except (MessageError, LookupError, UnicodeError, ValueError, TypeError, RecursionError):
        _note(body.problems, f"attached {part.ctype} could not be written out")
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
        data, well_formed = _unbase64(raw)
        if not well_formed:
            _note(body.problems, f"malformed base64 in {what[:60]}")
        return data
    if encoding == "quoted-printable":
        return binascii.a2b_qp(raw)
    if encoding in ("x-uuencode", "uuencode", "uue", "x-uue"):
        part.msg.set_payload(raw.decode("utf-8", "surrogateescape"))
        decoded = part.msg.get_payload(decode=True)
        return decoded if isinstance(decoded, bytes) else raw
    return raw


# --- HTML to text ----------------------------------------------------------------------------------

_BREAK = "\ue000"  # a private-use character marks where a block ended, until it becomes a line break
_LINE_BREAK = re.compile(r"<(?:br|/?(?:p|div|tr|li|h[1-6]|table|ul|ol|blockquote|pre|hr|dt|dd))\b[^>]*>",
                         re.IGNORECASE)
_CELL_END = re.compile(r"</t[dh]\s*>", re.IGNORECASE)
# Each regex below starts with a literal, which re searches for quickly; a leading class or optional
# part costs about 25 µs per KB of text (measured), more than the whole HTML cleaning.
_SPACES = re.compile("  +")
_PARAGRAPH = re.compile("\ue000 ?\ue000[ \ue000]*")
# Text the reader never sees; script and style would otherwise leak into the text.
_TEXT_ONLY = nh3.Cleaner(tags=set(), clean_content_tags={
    "script", "style", "title", "head", "noscript", "template", "object", "iframe"})


def _html_to_text(markup: str) -> str:
    """A cheap plain-text reading of HTML: tags dropped, block ends as line breaks, entities decoded."""
    text = html_entities.unescape(_TEXT_ONLY.clean(_CELL_END.sub(" ", _LINE_BREAK.sub(_BREAK, markup))))
    for space in ("\r", "\n", "\t", "\xa0", "\f", "\v"):
        text = text.replace(space, " ")
    text = _PARAGRAPH.sub("\n\n", _SPACES.sub(" ", text))
    return text.replace(_BREAK, "\n").replace(" \n", "\n").replace("\n ", "\n").strip()


# --- public API ------------------------------------------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def parse_message(raw: bytes) -> ParsedMail:
    """Everything commhub keeps of one message; best effort, defects noted in `problems`."""
    if not raw or raw.isspace():
        raise UnparsableMail("empty input")
    masked = _mask(raw)
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
        _note(problems, "MIME structure nested too deeply; body not read")
        return None
    except _PARSER_ERRORS as exc:
        _note(problems, f"MIME structure unreadable ({type(exc).__name__}); parts guessed")
        return _PARSER.parsebytes(raw, headersonly=True)


def parse_headers(raw_headers: bytes) -> ParsedMail:
    """The header of a message too large to fetch whole: headers_only=True, empty body."""
    if not raw_headers or raw_headers.isspace():
        raise UnparsableMail("empty input")
    msg = _PARSER.parsebytes(raw_headers, headersonly=True)
    headers = _header_map(msg)
    if not headers:
        raise UnparsableMail("no header fields")
    body = _Body([], _Masked(raw_headers))
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
        text = _html_to_text(html)
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
