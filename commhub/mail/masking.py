"""The masked copy of a message the stdlib parser reads fast: long bodies elided to marker lines,
multipart boundaries renamed to fixed names (their regexes stay cached); and base64 decoding that
survives damage."""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_BASE64 = bytes(sorted(set(range(256)) - set(_BASE64_ALPHABET)))


def unbase64(encoded: bytes) -> tuple[bytes, bool]:
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
class Masked:
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


def mask(raw: bytes) -> Masked:
    elided, runs = _elide(raw)
    # Searched for in what the parser will see (inside elided stretches they do no harm): a message
    # crafted to look masked already is parsed as it is.
    if elided.count(_MARKER) != len(runs) or _RENAMED in elided:
        return Masked(raw)
    lowered = elided.lower()
    if runs and b"delivery-status" in lowered:  # there the parser splits at blank lines too
        elided, runs, lowered = raw, [], raw.lower()
    renamed, boundaries = _rename_boundaries(elided, lowered)
    return Masked(renamed, runs, boundaries)


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
