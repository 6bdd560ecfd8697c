"""Phone-number normalisation: whatever a PBX, a CSV cell or an agent writes, one E.164 key.

Parsing is `phonenumbers` (libphonenumber's metadata); this module only strips what PBXs wrap around
a number (SIP/tel URIs, display names) and decides what counts as a withheld caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneNumberFormat,
    PhoneNumberType,
    carrier,
)

# What PBXs and carriers send when the caller suppressed their number (CLIR).
WITHHELD_WORDS = frozenset({
    "", "0", "anonymous", "unknown", "restricted", "private", "withheld", "unavailable",
    "blocked", "anonym", "unbekannt", "unterdrückt", "privat", "clir", "null",
})
# Shorter national numbers are internal extensions or service codes, never a customer's line.
MIN_SUBSCRIBER_DIGITS = 6
_URI = re.compile(r"^(?:sips?|tel):", re.IGNORECASE)
_DISPLAY_NAME = re.compile(r"^\s*\"?[^\"<]*\"?\s*<([^>]*)>\s*$")  # "Name" <sip:123@host>
_EXT_PARAM = re.compile(r";ext=([0-9]+)", re.IGNORECASE)
_HAS_DIGIT = re.compile(r"\d")

_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.PAGER})
LINE_TYPES = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
}


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """The outcome of normalising one piece of text: an E.164 key, withheld, or not a number."""

    raw: str
    e164: str | None = None
    extension: str | None = None
    withheld: bool = False
    problem: str | None = None  # why there is no e164 although the caller was not withheld


def normalise(raw: str | None, region: str = "DE") -> PhoneNumber:
    """Turn `030 1234567`, `+49 (0)30 1234567`, `sip:+49301234567@pbx;user=phone`, … into E.164."""
    text = (raw or "").strip()
    if is_withheld(text):
        return PhoneNumber(raw=text, withheld=True)
    candidate, extension = _unwrap(text)
    if is_withheld(candidate):
        return PhoneNumber(raw=text, withheld=True)
    if not _HAS_DIGIT.search(candidate):
        return PhoneNumber(raw=text, problem="contains no digits")
    fast = _fast_e164(candidate, region)
    if fast is not None:
        return PhoneNumber(raw=text, e164=fast, extension=extension)
    return parse_fully(text, candidate, region, extension)


def parse_fully(text: str, candidate: str, region: str, extension: str | None = None) -> PhoneNumber:
    """The general path: libphonenumber's parser and its possible-number check."""
    try:
        parsed = phonenumbers.parse(candidate, region)
    except NumberParseException as exc:
        return PhoneNumber(raw=text, problem=_parse_problem(exc))
    if len(str(parsed.national_number)) < MIN_SUBSCRIBER_DIGITS:
        return PhoneNumber(raw=text, problem="too short for an outside line (an internal extension?)")
    if not phonenumbers.is_possible_number(parsed):
        return PhoneNumber(raw=text, problem="not a possible number (wrong length for its country)")
    e164 = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
    return PhoneNumber(raw=text, e164=e164, extension=extension or parsed.extension)


_PLAIN = re.compile(r"^\+?[\d \t\-./()]+$")
_SEPARATORS = re.compile(r"[ \t\-./()]")
# Countries where `+CC (0)…` always means the trunk 0 is dropped (their national numbers never start with 0).
_TRUNK_IN_PARENS = frozenset({49, 43, 41})
_TRUNK_ZERO_AFTER_CODE = re.compile(r"^(?:\+|00)[ \t]*(\d{1,3})[ \t]*\(0\)")


@lru_cache(maxsize=512)
def _simple_country(region: str) -> bool:
    """Countries whose numbers are written as trunk 0 + number, or 00/+ country code + number, nothing else."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return (metadata is not None and metadata.national_prefix == "0"
            and metadata.national_prefix_for_parsing == "0" and metadata.international_prefix == "00"
            and metadata.national_prefix_transform_rule is None)


@lru_cache(maxsize=1024)
def _simple_country_code(digits: str) -> int | None:
    """The country code the (first three) digits start with, if that country is simple (see `_simple_country`)."""
    for length in (1, 2, 3):
        code = int(digits[:length])
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
        if regions:
            return code if all(_simple_country(region) for region in regions) else None
    return None


def _fast_e164(text: str, region: str) -> str | None:
    """E.164 for the everyday spellings of a number, without a full parse.

    `phonenumbers.parse` costs ≈ 15–30 µs, which decides the speed of a large import. The common
    spellings (`030 1234567`, `+49 (0)30 1234567`, `0043-1-5321234`) need only the trunk and
    international prefixes of countries that use 0 and 00; anything else (letters, extensions, other
    dialling plans, odd zeros) returns None and takes the full parse. A property test checks that
    both paths agree.
    """
    if not _simple_country(region) or not _PLAIN.match(text):
        return None
    code_before_trunk = None
    if "(0)" in text:
        spelled = _TRUNK_ZERO_AFTER_CODE.match(text)
        if not spelled or text.count("(0)") > 1:
            return None
        code_before_trunk = spelled.group(1)
        text = text.replace("(0)", "", 1)
    digits = _SEPARATORS.sub("", text)
    if digits.startswith("+"):
        international = digits[1:]
    elif digits.startswith("00"):
        international = digits[2:]
    elif digits.startswith("0"):
        international = f"{phonenumbers.country_code_for_region(region)}{digits[1:]}"
    else:
        return None
    if len(international) < 4 or not international.isdigit() or international[0] == "0":
        return None
    code = _simple_country_code(international[:3])
    if code_before_trunk is not None and (code_before_trunk != str(code) or code not in _TRUNK_IN_PARENS):
        return None  # "(0)" belongs right after the country code, and is only sure to mean "drop me" in DACH
    national = international[len(str(code)):] if code else ""
    if not national or national[0] == "0" or len(national) < MIN_SUBSCRIBER_DIGITS:
        return None
    if not _possible_length(code, len(national)):
        return None
    return f"+{code}{national}"


@lru_cache(maxsize=1024)
def _possible_length(code: int, length: int) -> bool:
    """libphonenumber's possible-number test depends only on the country and the length: ask it once."""
    return phonenumbers.is_possible_number(phonenumbers.PhoneNumber(country_code=code,
                                                                    national_number=int("1" * length)))


def is_withheld(text: str) -> bool:
    return text.strip().strip("+").casefold() in WITHHELD_WORDS


def _unwrap(text: str) -> tuple[str, str | None]:
    """Strip display name, URI scheme, host and parameters; keep a `;ext=` extension."""
    display = _DISPLAY_NAME.match(text)
    if display:
        text = display.group(1)
    if not _URI.match(text):
        return text, None
    extension_match = _EXT_PARAM.search(text)
    user = _URI.sub("", text, count=1).split("@", 1)[0].split(";", 1)[0]
    return user.strip(), extension_match.group(1) if extension_match else None


def _parse_problem(exc: NumberParseException) -> str:
    return {
        NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        NumberParseException.NOT_A_NUMBER: "not a phone number",
        NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        NumberParseException.TOO_SHORT_NSN: "too short",
        NumberParseException.TOO_LONG: "too long",
    }.get(exc.error_type, "not a phone number")


@lru_cache(maxsize=1)
def _geocoder():  # type: ignore[no-untyped-def]
    # Imported on first use: the geocoder's prefix tables cost ~100 MB of memory.
    from phonenumbers import geocoder

    return geocoder


def _from_e164(e164: str) -> phonenumbers.PhoneNumber:
    """The number object for an E.164 string; without a second full parse where the country code is plain."""
    code = _simple_country_code(e164[1:4])
    national = e164[1 + len(str(code)):] if code else ""
    if national and national[0] != "0":
        return phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    return phonenumbers.parse(e164)


def describe(number: PhoneNumber, *, language: str = "de", locate: bool = True) -> dict[str, object]:
    """Facts about a number for the screen-pop, useful even when no customer file matches."""
    if number.withheld:
        return {"withheld": True, "raw": number.raw}
    if number.e164 is None:
        return {"withheld": False, "raw": number.raw, "e164": None, "problem": number.problem}
    return {"withheld": False, "raw": number.raw, "e164": number.e164, "extension": number.extension,
            **_facts_of(number.e164, language, locate)}  # a copy: the cached dict is never handed out


# The same numbers call again and again, and these facts cost ≈ 0.1 ms of libphonenumber each time.
@lru_cache(maxsize=4096)
def _facts_of(e164: str, language: str, locate: bool) -> dict[str, object]:
    parsed = _from_e164(e164)
    # Finding the line type walks every pattern of the country (≈ 50 µs for a fixed line); do it once:
    # a number is valid exactly when it has a type, and only mobile ranges have a carrier.
    line_type = phonenumbers.number_type(parsed)
    facts: dict[str, object] = {
        "international": phonenumbers.format_number(parsed, PhoneNumberFormat.INTERNATIONAL),
        "national": phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL),
        "region": phonenumbers.region_code_for_number(parsed),
        "valid": line_type != PhoneNumberType.UNKNOWN,
        "line_type": LINE_TYPES.get(line_type, "unknown"),
        "carrier": (carrier.name_for_valid_number(parsed, language) or None) if line_type in _MOBILE_TYPES else None,
        "location": None,
    }
    if locate:
        facts["location"] = _geocoder().description_for_number(parsed, language) or None
    return facts


_OPERATOR_GROUP = re.compile(r"[-\s/.]\s*(0{1,3})\s*$")


def switchboard_prefix(raw: str, e164: str) -> str:
    """The digits every direct-dial number of a company starts with.

    Switchboards are written with the operator's extension set apart: `+49 30 1234-0`,
    `+41 44 668 18 00`. Their direct-dial numbers are `+49 30 1234-xx`, so the prefix drops that
    final group of zeros. A number written without it is its own prefix (`+49 89 123456` →
    `+49 89 123456 12`).
    """
    operator = _OPERATOR_GROUP.search(raw)
    if operator and e164.endswith(operator.group(1)):
        return e164[: -len(operator.group(1))]
    return e164


def prefixes_of(e164: str, shortest: int = 6) -> list[str]:
    """Every proper prefix of an E.164 number, longest first, down to `+CC` plus a few digits."""
    return [e164[:length] for length in range(len(e164) - 1, shortest - 1, -1)]
