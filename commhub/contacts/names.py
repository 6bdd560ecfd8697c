"""Folding names and addresses into keys for search, matching and duplicate detection."""

from __future__ import annotations

import re
import unicodedata

_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
# The longest key the name_key columns hold (organizations: 200, contacts: 220). Folding can lengthen a
# name ("ß" -> "ss", NFKD spells "ﷺ" in 18 letters): a 200-character company name may fold into 400.
KEY_LENGTH = 200
_EMAIL = re.compile(r"^[^@\s<>(),;:\"]+@[^@\s<>(),;:\"]+\.[^@\s<>(),;:\".]{2,}$")


def fold(text: str | None) -> str:
    """`Jürgen  Müller` and `Juergen Mueller` and `JÜRGEN MÜLLER` share one key."""
    if not text:
        return ""
    text = text.casefold()
    if not text.isascii():  # most names are ASCII: skip the Unicode decomposition for them
        text = text.translate(_GERMAN)
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return " ".join(text.split())[:KEY_LENGTH]


def contact_key(first: str | None, last: str | None) -> str:
    return fold(f"{last or ''} {first or ''}")


def normalise_email(address: str) -> str | None:
    """Lower-cased and trimmed, or None when it is not an address (the domain part is case-free by RFC 5321,
    and no mail system in use treats the local part's case as significant)."""
    candidate = address.strip().strip("<>").strip().lower()
    if candidate.startswith("mailto:"):
        candidate = candidate[len("mailto:"):]
    return candidate if _EMAIL.match(candidate) and len(candidate) <= 320 else None


def display_name(first: str | None, last: str | None, title: str | None = None) -> str:
    """How a person is shown: `Dr. Sabine Weiß`."""
    return " ".join(part for part in (title, first, last) if part)
