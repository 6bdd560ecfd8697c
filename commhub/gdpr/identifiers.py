"""What identifies a person in stored text, and removing it from entries that must stay for others.

An email to three customers, or a call matched to a person and their company, stays in the other
files when one person is erased; their name, numbers and addresses are cut out of it. Matching
is by whole identifier (a full name, a number in its stored and usual written forms, an address),
never by a surname alone, which would also cut "Müller" out of "Müller Haustechnik GmbH".
"""

from __future__ import annotations

import re
from functools import cached_property
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers

ERASED = "[erased]"


@dataclass(frozen=True)
class Identifiers:
    numbers: frozenset[str]  # E.164
    addresses: frozenset[str]  # lowercased
    texts: tuple[str, ...]  # every written form to cut out, longest first

    @classmethod
    def of(cls, *, names: Iterable[str], numbers: Iterable[str], raw_numbers: Iterable[str],
           addresses: Iterable[str]) -> Identifiers:
        e164 = frozenset(n for n in numbers if n)
        forms = {form for number in e164 for form in _written_forms(number)}
        forms |= {raw.strip() for raw in raw_numbers if raw and len(raw.strip()) >= 5}
        lowered = frozenset(a.strip().lower() for a in addresses if a and a.strip())
        forms |= set(lowered)
        forms |= {name.strip() for name in names if name and len(name.strip()) >= 3}
        return cls(e164, lowered, tuple(sorted(forms, key=len, reverse=True)))

    @cached_property  # compiled once: an erasure scrubs every field of every shared entry with it
    def pattern(self) -> re.Pattern[str] | None:
        if not self.texts:
            return None
        return re.compile("|".join(re.escape(text) for text in self.texts), re.IGNORECASE)

    def scrub(self, value: Any) -> Any:
        """`value` (text, or JSON made of dicts, lists and text) with every identifier replaced."""
        pattern = self.pattern
        return value if pattern is None else _scrub(value, pattern)

    def mentioned_in(self, value: Any) -> bool:
        return self.scrub(value) != value

    def scrub_bytes(self, raw: bytes) -> bytes:
        """The raw message with addresses and names cut out (as ASCII/UTF-8 bytes; encoded
        words and base64 parts are not decoded, so a name hidden in them stays: said in the docs)."""
        result = raw
        for text in self.texts:
            encoded = text.encode("utf-8", "surrogatepass")
            result = re.sub(re.escape(encoded), ERASED.encode(), result, flags=re.IGNORECASE)
        return result


def _scrub(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(ERASED, value)
    if isinstance(value, list):
        return [_scrub(item, pattern) for item in value]
    if isinstance(value, dict):
        return {key: _scrub(item, pattern) for key, item in value.items()}
    return value


def _written_forms(e164: str) -> set[str]:
    """+493012345678 as it appears in payloads and titles: E.164, without +, international, national."""
    forms = {e164, e164.lstrip("+"), "00" + e164.lstrip("+")}
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return forms
    for style in (phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.NATIONAL):
        forms.add(phonenumbers.format_number(parsed, style))
    forms.add(str(parsed.national_number))
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    forms.add(re.sub(r"[^\d]", "", national))
    return {form for form in forms if len(form) >= 5}
