"""The sipgate adapter: URL token, sipgate's RSA signature, causes, targets and the XML replies."""

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

from adapters.sipgate import SPEC
from adapters.sipgate.public_key import sipgate_key

FIXTURES = ADAPTERS_DIR / "sipgate" / "fixtures"
TOKEN = "sg-token-5d0c91e2"


def fixture(name: str) -> RawRequest:
    return read_fixture(FIXTURES / f"{name}.http").request()


def source(**options: Any) -> SourceContext:
    base = source_context("sipgate", hook_url=f"https://crm.example.com/hooks/sipgate?token={TOKEN}")
    return replace(base, options={**base.options, **options})


def push(body: str, token: str = TOKEN) -> RawRequest:
    return RawRequest("POST", f"https://crm.example.com/hooks/sipgate?token={token}",
                      {"Content-Type": "application/x-www-form-urlencoded"}, {"token": token}, body.encode())


def parse(body: str) -> Any:
    [event] = SPEC.parse(push(body), source())
    return event


# --- sipgate's signature: the test vector of sipgate-io/sipgateio-node (lib/webhook/webhook.test.ts) ---

def test_the_published_key_is_sipgates_4096_bit_rsa_key() -> None:
    assert sipgate_key().key_size == 4096


def test_the_library_test_vector_verifies() -> None:
    SPEC.verify(fixture("newCall__signed_library_vector"), source(verify_signature=True))


def test_the_library_test_vector_with_one_digit_changed_fails() -> None:
    # the library's own negative case: fullUserId 123456789 -> 123456779
    request = fixture("newCall__signed_library_vector")
    changed = replace(request, body=request.body.replace(b"fullUserId%5B%5D%5B0%5D=123456789",
                                                        b"fullUserId%5B%5D%5B0%5D=123456779"))
    assert changed.body != request.body
    with pytest.raises(VerificationFailed):
        SPEC.verify(changed, source(verify_signature=True))


@pytest.mark.parametrize("signature", [None, "", "fakeSignature", "not base64 at all!"])
def test_a_missing_or_bogus_signature_fails_when_required(signature: str | None) -> None:
    request = fixture("newCall__signed_library_vector")
    headers = {k: v for k, v in request.headers.items() if k.lower() != "x-sipgate-signature"}
    if signature is not None:
        headers["X-Sipgate-Signature"] = signature
    with pytest.raises(VerificationFailed):
        SPEC.verify(replace(request, headers=headers), source(verify_signature=True))


def test_the_signature_is_not_checked_unless_enabled() -> None:
    request = fixture("newCall__readme_inbound")  # unsigned, like every push without the option
    SPEC.verify(request, source())
    with pytest.raises(VerificationFailed):
        SPEC.verify(request, source(verify_signature=True))


def test_a_valid_signature_does_not_replace_the_token() -> None:
    # sipgate signs every customer's pushes with the same key
    request = fixture("newCall__signed_library_vector")
    with pytest.raises(VerificationFailed):
        SPEC.verify(replace(request, query={"token": "someone-elses"}), source(verify_signature=True))


@pytest.mark.parametrize("query", [{}, {"token": ""}, {"token": TOKEN + "x"}])
def test_the_url_token_is_always_required(query: dict[str, str]) -> None:
    with pytest.raises(VerificationFailed):
        SPEC.verify(replace(push("event=newCall&callId=1&direction=in"), query=query), source())


# --- events -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cause", "outcome"), [
    ("normalClearing", None), ("busy", Outcome.BUSY), ("cancel", Outcome.MISSED),
    ("noAnswer", Outcome.REJECTED), ("congestion", Outcome.FAILED), ("notFound", Outcome.FAILED),
    ("forwarded", Outcome.FORWARDED), ("", None),
])
def test_hangup_causes(cause: str, outcome: Outcome | None) -> None:
    event = parse(f"event=hangup&cause={cause}&callId=1&from=492111234567&to=4915791234567&direction=in")
    assert (event.phase, event.outcome) == (Phase.ENDED, outcome)


def test_targets_are_user_ids_full_ids_and_names_without_duplicates() -> None:
    event = parse("event=newCall&callId=1&direction=in&from=492111234567&to=4915791234567"
                  "&user[]=Alice&user[]=Alice&userId[]=w0&userId[]=w0&fullUserId[]=1234567w0")
    assert event.targets == ("w0", "1234567w0", "Alice")


@pytest.mark.parametrize(("fields", "answered_by"), [
    ("user=John+Doe&userId=w0&fullUserId=1234567w0&answeringNumber=21199999999", "w0"),
    ("fullUserId=1234567w0&user=John+Doe", "1234567w0"),
    ("user=John+Doe", "John Doe"),
    ("answeringNumber=4915799912345", "4915799912345"),  # a <Dial> target answered
    ("", None),  # an outbound call: sipgate names no user
])
def test_answered_by_prefers_the_user_id(fields: str, answered_by: str | None) -> None:
    event = parse(f"event=answer&callId=1&direction=in&from=492111234567&to=4915791234567&{fields}")
    assert event.answered_by == answered_by


def test_the_documented_origcallid_is_the_related_call() -> None:
    event = parse("event=newCall&callId=2&origCallId=1&direction=in&from=492111234567&to=4915791234567")
    assert event.related_call_id == "1"


def test_numbers_get_their_plus_and_withheld_stays() -> None:
    event = parse("event=newCall&callId=1&direction=in&from=anonymous&to=4915791234567")
    assert (event.caller, event.callee) == ("anonymous", "+4915791234567")


@pytest.mark.parametrize(("body", "field"), [
    ("callId=1&direction=in", "event"),
    ("event=newCall&callId=1", "direction"),
    ("event=newCall&callId=1&direction=both", "direction"),
    ("event=hangup&callId=&direction=in&cause=busy", "callId"),
])
def test_a_missing_or_bad_field_is_named(body: str, field: str) -> None:
    with pytest.raises(BadPayload) as error:
        parse(body)
    assert error.value.field == field


def test_dtmf_is_ignored_with_an_empty_xml_response() -> None:
    with pytest.raises(IgnoredEvent) as ignored:
        parse("event=dtmf&dtmf=1&callId=123456")
    assert ignored.value.reply is not None
    assert ignored.value.reply.body == '<?xml version="1.0" encoding="UTF-8"?>\n<Response/>'


# --- replies ----------------------------------------------------------------------------------------

def test_new_call_asks_for_answer_and_hangup_at_the_hook_url_with_its_token() -> None:
    config = replace(source(), hook_url="https://crm.example.com/hooks/sipgate?token=a&b=<c>")
    request = push("event=newCall&callId=1&direction=in&from=492111234567")
    reply = SPEC.reply(request, SPEC.parse(request, config), config)
    assert reply.content_type == "application/xml"
    assert reply.body == ('<?xml version="1.0" encoding="UTF-8"?>\n<Response'
                          ' onAnswer="https://crm.example.com/hooks/sipgate?token=a&amp;b=&lt;c&gt;"'
                          ' onHangup="https://crm.example.com/hooks/sipgate?token=a&amp;b=&lt;c&gt;"/>')


@pytest.mark.parametrize("event", ["answer", "hangup"])
def test_follow_up_events_get_an_empty_response(event: str) -> None:
    request = push(f"event={event}&callId=1&direction=in&from=492111234567")
    reply = SPEC.reply(request, SPEC.parse(request, source()), source())
    assert reply.body == '<?xml version="1.0" encoding="UTF-8"?>\n<Response/>'
