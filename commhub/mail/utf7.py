"""IMAP mailbox names: modified UTF-7 (RFC 3501 §5.1.3) and quoting for command arguments.

Servers list folders in modified UTF-7 ("Entw&APw-rfe" is "Entwürfe") and expect the same form back
in SELECT, APPEND and friends. `encode`/`decode` convert between that wire form and the name a
person reads; `quote` makes the wire form safe as one command argument.
"""

from __future__ import annotations

import base64
import binascii
import re

# RFC 3501 §5.1.3: printable US-ASCII stands for itself, except "&" which starts a shift.
_DIRECT = frozenset(chr(code) for code in range(0x20, 0x7F)) - {"&"}
_SHIFTED = re.compile(r"&([^-]*)-")
_MODIFIED_BASE64 = re.compile(r"[A-Za-z0-9+,]*")
# astring (RFC 3501 §9): ASTRING-CHAR is any CHAR except atom-specials, "]" excepted.
_ATOM = re.compile(r"[^(){ \x00-\x1f\x7f%*\"\\]+")


def encode(name: str) -> str:
    """The wire form of a mailbox name: `encode("Entwürfe") == "Entw&APw-rfe"`."""
    out: list[str] = []
    run: list[str] = []
    for char in name:
        if char in _DIRECT:
            if run:
                out.append(_shift("".join(run)))
                run.clear()
            out.append(char)
        elif char == "&":
            if run:
                out.append(_shift("".join(run)))
                run.clear()
            out.append("&-")
        else:
            run.append(char)
    if run:
        out.append(_shift("".join(run)))
    return "".join(out)


def _shift(text: str) -> str:
    try:
        utf16 = text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise ValueError(f"mailbox name contains an unpaired surrogate: {text!r}") from exc
    return "&" + base64.b64encode(utf16).rstrip(b"=").replace(b"/", b",").decode("ascii") + "-"


def decode(name: str) -> str:
    """The readable form of a wire name: `decode("Entw&APw-rfe") == "Entwürfe"`; ValueError if malformed.

    Non-canonical but unambiguous spellings (two adjacent shifts, shifted ASCII) are accepted: the name
    came from the server, and refusing it would hide a folder the user can see in their mail client.
    """
    out: list[str] = []
    position = 0
    while position < len(name):
        shift = name.find("&", position)
        direct = name[position:] if shift < 0 else name[position:shift]
        _check_direct(name, direct, position)
        out.append(direct)
        if shift < 0:
            break
        found = _SHIFTED.match(name, shift)
        if found is None:
            raise ValueError(f"malformed mailbox name {name!r}: '&' at {shift} is not closed by '-'")
        out.append(_unshift(name, found.group(1), shift) if found.group(1) else "&")
        position = found.end()
    return "".join(out)


def _check_direct(name: str, direct: str, offset: int) -> None:
    for index, char in enumerate(direct):
        if char not in _DIRECT:
            raise ValueError(f"malformed mailbox name {name!r}: {char!r} at {offset + index} must be "
                             "encoded in modified UTF-7 (decode() takes the wire form)")


def _unshift(name: str, chunk: str, offset: int) -> str:
    where = f"malformed mailbox name {name!r}: '&{chunk}-' at {offset}"
    if not _MODIFIED_BASE64.fullmatch(chunk):
        raise ValueError(f"{where} is not modified base64 (A-Z a-z 0-9 + ,)")
    padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
    try:
        utf16 = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{where} has an impossible length") from exc
    # Leftover bits must be zero and whole UTF-16 units present, else the name was cut or corrupted.
    if len(utf16) % 2 or base64.b64encode(utf16).rstrip(b"=").decode("ascii") != chunk.replace(",", "/"):
        raise ValueError(f"{where} does not hold whole UTF-16 characters")
    try:
        return utf16.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where} holds an unpaired UTF-16 surrogate") from exc


def quote(name: str) -> str:
    """`name` (already encoded) as one IMAP astring: bare when it can be an atom, else a quoted string.

    Raises ValueError for characters a quoted string cannot carry (8-bit, CR, LF, NUL): such a name was
    not passed through `encode` first, and sending it would break the command line.
    """
    if not name.isascii() or any(char in name for char in "\r\n\x00"):
        raise ValueError(f"mailbox name {name!r} cannot be sent as a quoted string; encode() it first")
    if _ATOM.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
