"""The Placetel adapter: X-PLACETEL-SIGNATURE, the url_token option, hangup types and peers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from support.http_fixture import ADAPTERS_DIR, read_fixture, source_context

from commhub.telephony.contract import (
    BadPayload,
    IgnoredEvent,
    Outcome,
    Phase,
    RawRequest,
    SourceContext,
    VerificationFailed,
)

from adapters.placetel import SPEC
from adapters.placetel.verify import sign

FIXTURES = ADAPTERS_DIR / "placetel" / "fixtures"
SECRET = "12345"
# Placetel's README (github.com/Placetel/call-control-notify-api), section "Our POST request"
VECTOR_BODY = (b"call_id=4a4cbb39578170aed9a2761a7bec8c7e704a541f52291ef603d6f5f152980c3c&event=CallAccepted"
               b"&from=0123456789&to=0987654321")
VECTOR_SIGNATURE = "c4f823c5b8806432fe2b83b1fc2ee714422e0cdfb4b5129152a7d0bbcd7792d0"


def source(**options: Any) -> SourceContext:
    base = source_context("placetel")
    return replace(base, options={**base.options, **options})


def notify(body: bytes, *, signature: str | None = "sign", query: dict[str, str] | None = None) -> RawRequest:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-PLACETEL-SIGNATURE"] = sign(SECRET, body) if signature == "sign" else signature
    return RawRequest("POST", "https://commhub.example.com/hooks/placetel", headers, query or {}, body)


def parse(body: str) -> Any:
    [event] = SPEC.parse(notify(body.encode()), source())
    return event


# --- signature ----------------------------------------------------------------------------------------

def test_placetels_published_vector() -> None:
    assert sign(SECRET, VECTOR_BODY) == VECTOR_SIGNATURE
    SPEC.verify(notify(VECTOR_BODY, signature=VECTOR_SIGNATURE), source())


def test_a_changed_body_fails() -> None:
    with pytest.raises(VerificationFailed):
        SPEC.verify(notify(VECTOR_BODY.replace(b"0123456789", b"0123456788"), signature=VECTOR_SIGNATURE), source())


def test_another_secret_fails() -> None:
    with pytest.raises(VerificationFailed):
        SPEC.verify(notify(VECTOR_BODY, signature=VECTOR_SIGNATURE), replace(source(), secret="54321"))


def test_upper_case_hex_is_the_same_signature() -> None:
    SPEC.verify(notify(VECTOR_BODY, signature=VECTOR_SIGNATURE.upper()), source())


def test_a_missing_signature_fails_by_default_even_with_the_token() -> None:
    with pytest.raises(VerificationFailed):
        SPEC.verify(notify(VECTOR_BODY, signature=None, query={"token": SECRET}), source())


def test_url_token_accepts_an_unsigned_request_with_the_token() -> None:
    SPEC.verify(notify(VECTOR_BODY, signature=None, query={"token": SECRET}), source(url_token=True))


@pytest.mark.parametrize("query", [{}, {"token": "1234"}])
def test_url_token_still_needs_the_right_token(query: dict[str, str]) -> None:
    with pytest.raises(VerificationFailed):
        SPEC.verify(notify(VECTOR_BODY, signature=None, query=query), source(url_token=True))


def test_a_wrong_signature_is_not_saved_by_the_token() -> None:
    with pytest.raises(VerificationFailed):
        SPEC.verify(notify(VECTOR_BODY, signature="0" * 64, query={"token": SECRET}), source(url_token=True))


# --- events -----------------------------------------------------------------------------------------------

CALL = "call_id=f4591ba315d81671d7a06c2a3b4f963dafd119de39cb26edd8a6476676b2f447"


@pytest.mark.parametrize(("hangup_type", "outcome"), [
    ("accepted", Outcome.COMPLETED), ("voicemail", Outcome.MISSED), ("missed", Outcome.MISSED),
    ("canceled", Outcome.MISSED), ("blocked", Outcome.REJECTED), ("busy", Outcome.BUSY),
    ("unavailable", Outcome.FAILED), ("congestion", Outcome.FAILED), ("newtype", None),
])
def test_hangup_types(hangup_type: str, outcome: Outcome | None) -> None:
    event = parse(f"{CALL}&direction=in&duration=0&event=HungUp&from=022129191999&to=030600000000&type={hangup_type}")
    assert (event.phase, event.outcome) == (Phase.ENDED, outcome)


def test_a_hangup_without_type_leaves_the_outcome_to_the_core() -> None:
    assert parse(f"{CALL}&event=HungUp&from=022129191999&to=030600000000").outcome is None


def test_events_without_direction_are_inbound_as_in_the_older_api() -> None:
    assert parse(f"{CALL}&event=HungUp&from=022129191999&to=030600000000&type=missed").direction == "in"
    assert parse(f"{CALL}&event=OutgoingCall&from=030600000000&to=017612345678").direction == "out"


def test_the_peer_rings_on_outgoing_calls_and_answers_accepted_ones() -> None:
    out = parse(f"{CALL}&direction=out&event=OutgoingCall&from=030600000000&peer=7777abcdefg%40fpbx.de&to=23")
    accepted = parse(f"{CALL}&direction=in&event=CallAccepted&from=022129191999&peer=7777abcdefg%40fpbx.de"
                     "&to=030600000000")
    assert (out.targets, out.answered_by) == (("7777abcdefg@fpbx.de",), None)
    assert (accepted.targets, accepted.answered_by) == ((), "7777abcdefg@fpbx.de")


def test_national_numbers_and_sip_ids_stay_as_sent() -> None:
    event = parse(f"{CALL}&direction=out&event=OutgoingCall&from=7777abcdefg%40fpbx.de&to=7777xyzabcd%40fpbx.de")
    assert (event.caller, event.callee) == ("7777abcdefg@fpbx.de", "7777xyzabcd@fpbx.de")
    assert parse(f"{CALL}&event=IncomingCall&from=022129191999&to=030600000000").caller == "022129191999"


@pytest.mark.parametrize(("body", "field"), [
    (f"{CALL}&from=022129191999", "event"),
    ("event=IncomingCall&from=022129191999", "call_id"),
    (f"{CALL}&event=IncomingCall&direction=inbound", "direction"),
    (f"{CALL}&event=HungUp&type=accepted&duration=1.5", "duration"),
])
def test_a_missing_or_bad_field_is_named(body: str, field: str) -> None:
    with pytest.raises(BadPayload) as error:
        parse(body)
    assert error.value.field == field


def test_an_unknown_event_is_ignored_with_an_empty_reply() -> None:
    with pytest.raises(IgnoredEvent) as ignored:
        parse(f"{CALL}&event=CallTransferred")
    assert ignored.value.reply is not None and ignored.value.reply.body == ""


def test_the_reply_is_an_empty_200() -> None:
    request = read_fixture(FIXTURES / "IncomingCall__inbound.http").request()
    reply = SPEC.reply(request, SPEC.parse(request, source()), source())
    assert (reply.status, reply.body) == (200, "")
