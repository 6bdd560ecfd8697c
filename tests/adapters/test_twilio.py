"""Twilio: the signature as twilio-python computes it, withheld callers, and the TwiML commhub answers with."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

import pytest
from multidict import CIMultiDict
from support.http_fixture import ADAPTERS_DIR, read_fixture, source_context

from adapters.twilio import SPEC
from adapters.twilio.verify import signature
from commhub.telephony.contract import (
    BadPayload,
    IgnoredEvent,
    Outcome,
    Phase,
    RawRequest,
    VerificationFailed,
)

FIXTURES = ADAPTERS_DIR / "twilio" / "fixtures"

# twilio-python tests/unit/test_request_validator.py
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {"CallSid": ["CA1234567890ABCDE"], "Digits": ["1234"], "From": ["+14158675309"],
                 "To": ["+18005551212"], "Caller": ["+14158675309"]}


def form_request(url: str, params: list[tuple[str, str]], signed: str | None) -> RawRequest:
    headers = CIMultiDict({"Content-Type": "application/x-www-form-urlencoded"})
    if signed is not None:
        headers["X-Twilio-Signature"] = signed
    return RawRequest("POST", url, headers, {}, urlencode(params).encode())


def vector_request(url: str, signed: str) -> RawRequest:
    return form_request(url, [(name, values[0]) for name, values in VECTOR_PARAMS.items()], signed)


def fixture_request(name: str) -> RawRequest:
    return read_fixture(FIXTURES / f"{name}.http").request()


def fields_request(pairs: list[tuple[str, str]]) -> RawRequest:
    return form_request("https://commhub.example.com/hooks/twilio", pairs, None)


def voice_fields(**changes: str) -> list[tuple[str, str]]:
    fields = {"AccountSid": "AC3f6c1b2a9e8d7c6b5a4f3e2d1c0b9a8f", "CallSid": "CA7d2e9b4c1f0a8e6d5c3b2a1f0e9d8c7b",
              "CallStatus": "ringing", "Direction": "inbound", "From": "+4915123456789", "To": "+4930123456700"}
    fields.update(changes)
    return list(fields.items())


class TestPublishedVectors:
    def test_signature_of_the_twilio_python_example(self) -> None:
        assert signature(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="

    def test_signature_with_the_default_port_in_the_url(self) -> None:
        url = VECTOR_URL.replace(".com", ".com:443")
        assert signature(VECTOR_TOKEN, url, VECTOR_PARAMS) == "kvajT1Ptam85bY51eRf/AJRuM3w="

    def test_repeated_parameter_values_are_sorted(self) -> None:
        params = {"Sid": ["CA123"], "SidAccount": ["AC123"], "Digits": ["5678", "1234"]}
        assert signature(VECTOR_TOKEN, VECTOR_URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="

    @pytest.mark.parametrize(("url", "signed"), [
        (VECTOR_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        (VECTOR_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # Twilio signed with :443, we were called without
        (VECTOR_URL.replace(".com", ".com:1234"), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        (VECTOR_URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        (VECTOR_URL.replace(".com", ".com:1234").replace("https", "http"), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ])
    def test_request_is_accepted_like_the_official_validator(self, url: str, signed: str) -> None:
        source = replace(source_context("twilio"), secret=VECTOR_TOKEN)
        SPEC.verify(vector_request(url, signed), source)

    def test_json_body_is_checked_against_body_sha256(self) -> None:
        body = b'{"property": "value", "boolean": true}'
        url = VECTOR_URL + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        headers = CIMultiDict({"Content-Type": "application/json", "X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4="})
        source = replace(source_context("twilio"), secret=VECTOR_TOKEN)
        SPEC.verify(RawRequest("POST", url, headers, {}, body), source)
        with pytest.raises(VerificationFailed):
            SPEC.verify(RawRequest("POST", url, headers, {}, body.replace(b"true", b"false")), source)


class TestVerification:
    def test_fixture_signed_with_the_sources_token_passes(self) -> None:
        SPEC.verify(fixture_request("voice__inbound"), source_context("twilio"))

    def test_tampered_body_fails(self) -> None:
        request = fixture_request("voice__inbound")
        tampered = replace(request, body=request.body.replace(b"%2B4915123456789", b"%2B4915123456780", 1))
        with pytest.raises(VerificationFailed):
            SPEC.verify(tampered, source_context("twilio"))

    def test_wrong_token_fails(self) -> None:
        with pytest.raises(VerificationFailed):
            SPEC.verify(fixture_request("voice__inbound"), replace(source_context("twilio"), secret="other"))

    def test_missing_header_fails(self) -> None:
        request = fixture_request("voice__inbound")
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() != "x-twilio-signature")
        with pytest.raises(VerificationFailed, match="missing"):
            SPEC.verify(replace(request, headers=headers), source_context("twilio"))

    def test_source_without_token_refuses_everything(self) -> None:
        with pytest.raises(VerificationFailed):
            SPEC.verify(fixture_request("voice__inbound"), replace(source_context("twilio"), secret=None))

    def test_url_behind_a_proxy_must_be_the_public_one(self) -> None:
        request = fixture_request("voice__inbound")
        with pytest.raises(VerificationFailed):
            SPEC.verify(replace(request, url="http://127.0.0.1:8080/hooks/twilio"), source_context("twilio"))

    def test_voice_url_fetched_with_get_signs_the_url_alone(self) -> None:
        url = "https://commhub.example.com/hooks/twilio?" + urlencode(voice_fields())
        signed = signature("9f3c2a7b5e1d4c8a0b6f2e9d7c5a3b1e", url, {})
        request = RawRequest("GET", url, CIMultiDict({"X-Twilio-Signature": signed}), dict(voice_fields()))
        SPEC.verify(request, source_context("twilio"))
        assert SPEC.parse(request, source_context("twilio"))[0].phase is Phase.RINGING


class TestCallers:
    @pytest.mark.parametrize("sent", ["+266696687", "+7378742833", "+86282452253", "+2562533", "+8656696",
                                      "ANONYMOUS", "RESTRICTED", "UNAVAILABLE", "client:Anonymous"])
    def test_withheld_sentinels_become_anonymous(self, sent: str) -> None:
        [event] = SPEC.parse(fields_request(voice_fields(From=sent)), source_context("twilio"))
        assert event.caller == "anonymous"
        assert event.direction == "in"

    def test_real_number_is_kept_as_sent(self) -> None:
        [event] = SPEC.parse(fields_request(voice_fields(From="+12025550123")), source_context("twilio"))
        assert event.caller == "+12025550123"

    def test_sip_destination_routes_to_its_user_part(self) -> None:
        pairs = voice_fields(To="sip:alice@commhub.sip.twilio.com;transport=tls")
        [event] = SPEC.parse(fields_request(pairs), source_context("twilio"))
        assert event.targets == ("alice",)
        assert event.callee == "sip:alice@commhub.sip.twilio.com;transport=tls"

    def test_a_dial_child_leg_is_an_outbound_call_of_its_own(self) -> None:
        pairs = voice_fields(Direction="outbound-dial", To="client:bob", CallStatus="in-progress",
                             From="+4930123456700", ParentCallSid="CA0000000000000000000000000000beef")
        [event] = SPEC.parse(fields_request(pairs), source_context("twilio"))
        assert event.direction == "out" and event.targets == ("+4930123456700",)
        assert event.related_call_id == "CA0000000000000000000000000000beef"


class TestOddRequests:
    def test_unknown_direction_names_the_field(self) -> None:
        with pytest.raises(BadPayload) as caught:
            SPEC.parse(fields_request(voice_fields(Direction="sideways")), source_context("twilio"))
        assert caught.value.field == "Direction"

    def test_unreadable_timestamp_names_the_field(self) -> None:
        pairs = voice_fields(CallStatus="completed", SequenceNumber="3", Timestamp="yesterday")
        with pytest.raises(BadPayload) as caught:
            SPEC.parse(fields_request(pairs), source_context("twilio"))
        assert caught.value.field == "Timestamp"

    def test_unknown_call_status_is_ignored_with_empty_twiml(self) -> None:
        with pytest.raises(IgnoredEvent) as caught:
            SPEC.parse(fields_request(voice_fields(CallStatus="teleported")), source_context("twilio"))
        assert caught.value.reply is not None and caught.value.reply.body.endswith("<Response/>")

    def test_outbound_cancel_is_missed_and_failure_failed(self) -> None:
        for status, outcome in (("canceled", Outcome.MISSED), ("failed", Outcome.FAILED)):
            pairs = voice_fields(Direction="outbound-api", CallStatus=status, SequenceNumber="1")
            [event] = SPEC.parse(fields_request(pairs), source_context("twilio"))
            assert event.outcome is outcome


class TestReply:
    def test_without_dial_option_the_voice_url_gets_empty_twiml(self) -> None:
        source = replace(source_context("twilio"), options={})
        request = fields_request(voice_fields())
        reply = SPEC.reply(request, SPEC.parse(request, source), source)
        assert reply.body == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
        assert reply.content_type == "application/xml"

    def test_dial_to_a_sip_uri_and_an_escaped_action_url(self) -> None:
        source = replace(source_context("twilio", hook_url="https://c.example.com/hooks/twilio?a=1&b=2"),
                         options={"dial": "sip:reception@pbx.example.com"})
        request = fields_request(voice_fields())
        reply = SPEC.reply(request, SPEC.parse(request, source), source)
        assert '<Dial action="https://c.example.com/hooks/twilio?a=1&amp;b=2" answerOnBridge="true">' in reply.body
        assert "<Sip>sip:reception@pbx.example.com</Sip>" in reply.body

    def test_status_callbacks_never_dial(self) -> None:
        source = source_context("twilio")
        request = fixture_request("status__ringing_outbound")
        reply = SPEC.reply(request, SPEC.parse(request, source), source)
        assert "<Dial" not in reply.body
