"""Normalisation: every way a number is written reaches one E.164 key; withheld callers stay withheld."""

from __future__ import annotations

import pytest

from commhub.contacts.phone import describe, normalise, prefixes_of, switchboard_prefix

BERLIN = "+49301234567"


@pytest.mark.parametrize("text", [
    "030 1234567", "+49 (0)30 1234567", "0049 30 1234567", "(030) 123 45-67", "+49 30 1234567",
    "+49-30-1234567", "030/1234567", "sip:+49301234567@pbx.example;user=phone", "sips:030 1234567@pbx",
    "tel:+49-30-1234567", '"Jürgen Müller" <sip:+49301234567@pbx.example>', "  030 1234567  ",
    "+49301234567",
])
def test_formats_reach_the_same_e164(text: str) -> None:
    assert normalise(text, "DE").e164 == BERLIN


def test_extension_is_kept_apart() -> None:
    number = normalise("tel:+49-30-1234567;ext=12", "DE")
    assert (number.e164, number.extension) == (BERLIN, "12")
    assert normalise("030 1234567 ext. 12", "DE").extension == "12"


@pytest.mark.parametrize("text", ["anonymous", "Anonymous", "unknown", "restricted", "private", "", "0",
                                  "sip:anonymous@anonymous.invalid", "Unterdrückt", None])
def test_withheld_callers(text: str | None) -> None:
    number = normalise(text, "DE")
    assert number.withheld and number.e164 is None


@pytest.mark.parametrize(("text", "problem"), [
    ("abc", "contains no digits"), ("12", "too short"), ("+999 1234567", "unknown country code"),
    ("0301234567890123456789", "too long"),
])
def test_garbage_is_not_a_number(text: str, problem: str) -> None:
    number = normalise(text, "DE")
    assert number.e164 is None and not number.withheld
    assert problem in (number.problem or "")


def test_default_region_decides_national_numbers() -> None:
    assert normalise("01 5321234", "AT").e164 == "+4315321234"
    assert normalise("044 668 18 15", "CH").e164 == "+41446681815"


def test_switchboard_prefix_drops_the_operator_zero() -> None:
    assert switchboard_prefix("+49 30 1234567-0", "+493012345670") == "+49301234567"
    assert switchboard_prefix("089 1234 0", "+498912340") == "+4989 1234".replace(" ", "")
    assert switchboard_prefix("089 123450", "+4989123450") == "+4989123450"


def test_prefixes_are_longest_first() -> None:
    assert prefixes_of("+4930123") == ["+493012", "+49301"]


def test_facts_for_an_unknown_mobile_number() -> None:
    facts = describe(normalise("0171 2345678", "DE"), language="de")
    assert facts["e164"] == "+491712345678"
    assert facts["region"] == "DE" and facts["line_type"] == "mobile" and facts["valid"] is True
    assert facts["international"] == "+49 171 2345678" and facts["national"] == "0171 2345678"
    assert facts["carrier"]  # the Deutsche Telekom range; the name comes from phonenumbers' data


def test_facts_with_location_and_for_withheld() -> None:
    assert describe(normalise("030 1234567", "DE"), language="de", locate=True)["location"] == "Berlin"
    assert describe(normalise("anonymous", "DE")) == {"withheld": True, "raw": "anonymous"}


def test_switchboard_prefix_drops_a_group_of_zeros() -> None:
    assert switchboard_prefix("+41 44 668 18 00", "+41446681800") == "+414466818"


# --- the fast path for everyday spellings must agree with libphonenumber's full parse -------------

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from commhub.contacts.phone import _fast_e164, parse_fully  # noqa: E402

_SPELLING = st.tuples(
    st.sampled_from(["", "", "+", "00", "0", "+49 ", "+49 (0)", "+43 ", "+41 ", "+33 ", "+39 ", "+44 ", "+1 ", "0049", "+43(0)", "+58(0)", "+92 (0)", "00 41 (0)"]),
    st.lists(st.sampled_from(list("0123456789") * 4 + [" ", "-", "/", ".", "(", ")", "(0)", "+", "00"]),
             min_size=1, max_size=20).map("".join)).map("".join)


@settings(max_examples=3000, deadline=None)
@given(text=_SPELLING, region=st.sampled_from(["DE", "AT", "CH", "FR", "NL", "GB", "IT", "US"]))
@example(text="+49 (0)30 1234567", region="DE")
@example(text="0049 030 1234567", region="DE")
@example(text="030 12", region="DE")
@example(text="+43 (0)1 5321234", region="AT")
def test_fast_path_agrees_with_full_parse(text: str, region: str) -> None:
    fast = _fast_e164(text, region)
    if fast is not None:
        assert parse_fully(text, text, region).e164 == fast


@settings(max_examples=500, deadline=None)
@given(area=st.sampled_from(["30", "89", "221", "6221", "171", "1520"]),
       subscriber=st.text("0123456789", min_size=5, max_size=8).filter(lambda s: s[0] != "0"),
       shape=st.sampled_from(["0{a} {s}", "+49 {a} {s}", "+49 (0){a} {s}", "0049-{a}-{s}", "(0{a}) {s}", "0{a}/{s}"]))
def test_fast_path_takes_the_everyday_spellings(area: str, subscriber: str, shape: str) -> None:
    text = shape.format(a=area, s=subscriber)
    full = parse_fully(text, text, "DE").e164
    assert _fast_e164(text, "DE") == full


@settings(max_examples=300, deadline=None)
@given(text=_SPELLING, region=st.sampled_from(["DE", "AT", "CH", "US", "GB"]))
def test_facts_agree_with_libphonenumber(text: str, region: str) -> None:
    import phonenumbers
    from phonenumbers import carrier

    number = normalise(text, region)
    if number.e164 is None:
        return
    parsed = phonenumbers.parse(number.e164)
    facts = describe(number, language="en")
    assert facts["valid"] == phonenumbers.is_valid_number(parsed)
    assert facts["carrier"] == (carrier.name_for_number(parsed, "en") or None)


@settings(max_examples=300, deadline=None)
@given(text=_SPELLING, region=st.sampled_from(["DE", "AT", "CH", "US", "GB", "IT"]))
def test_facts_without_a_second_parse_match_a_full_parse(text: str, region: str) -> None:
    import phonenumbers

    from commhub.contacts.phone import _from_e164

    number = normalise(text, region)
    if number.e164 is not None:
        assert _from_e164(number.e164) == phonenumbers.parse(number.e164)
