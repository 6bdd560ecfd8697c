"""The generic adapter: commhub's signed JSON format and Zammad's generic-CTI shape."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from support.http_fixture import ADAPTERS_DIR, read_fixture, source_context

from commhub.telephony.contract import (
    BadPayload,
    Outcome,
    Phase,
    RawRequest,
    Replayed,
    SourceContext,
    VerificationFailed,
)

from adapters.generic import SPEC
from adapters.generic.verify import sign

FIXTURES = ADAPTERS_DIR / "generic" / "fixtures"
SECRET = "whsec-generic-fixtures-7f3a"
NOW = 1795514400  # the `now` of fixtures/source.json


def fixture(name: str) -> RawRequest:
    return read_fixture(FIXTURES / f"{name}.http").request()


def source(**options: Any) -> SourceContext:
    base = source_context("generic")
    return replace(base, options={**base.options, **options})


def signed(body: dict[str, Any] | bytes, *, timestamp: int = NOW, secret: str = SECRET,
           signature: str | None = None) -> RawRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Commhub-Timestamp": str(timestamp),
               "X-Commhub-Signature": signature or sign(secret, timestamp, raw)}
    return RawRequest("POST", "https://commhub.example.com/hooks/generic", headers, {}, raw)


def unsigned(body: bytes, token: str | None, content_type: str = "application/x-www-form-urlencoded") -> RawRequest:
    query = {"token": token} if token is not None else {}
    return RawRequest("POST", "https://commhub.example.com/hooks/generic", {"Content-Type": content_type},
                      query, body)


RINGING = {"event": "ringing", "call_id": "c-1", "direction": "in", "from": "+4921112345678"}


# --- signatures -----------------------------------------------------------------------------------

def test_a_signed_request_passes() -> None:
    SPEC.verify(signed(RINGING), source())


def test_a_changed_body_fails_the_signature() -> None:
    request = signed(RINGING)
    tampered = replace(request, body=request.body.replace(b"+4921112345678", b"+4921112345679"))
    with pytest.raises(VerificationFailed):
        SPEC.verify(tampered, source())


def test_a_changed_timestamp_fails_the_signature() -> None:
    request = signed(RINGING, timestamp=NOW)
    moved = replace(request, headers={**request.headers, "X-Commhub-Timestamp": str(NOW + 1)})
    with pytest.raises(VerificationFailed):
        SPEC.verify(moved, source())


def test_a_signature_made_with_another_secret_fails() -> None:
    with pytest.raises(VerificationFailed):
        SPEC.verify(signed(RINGING, secret="someone-else"), source())


@pytest.mark.parametrize("timestamp", ["", "soon", "1795514400.5", "-1795514400"])
def test_a_missing_or_malformed_timestamp_fails(timestamp: str) -> None:
    request = signed(RINGING)
    with pytest.raises(VerificationFailed):
        SPEC.verify(replace(request, headers={**request.headers, "X-Commhub-Timestamp": timestamp}), source())


def test_a_signature_without_the_v1_prefix_fails() -> None:
    request = signed(RINGING)
    bare = request.headers["X-Commhub-Signature"].removeprefix("v1=")
    with pytest.raises(VerificationFailed):
        SPEC.verify(replace(request, headers={**request.headers, "X-Commhub-Signature": bare}), source())


def test_one_matching_entry_among_several_is_enough() -> None:
    good = sign(SECRET, NOW, json.dumps(RINGING).encode())
    SPEC.verify(signed(RINGING, signature=f"v1={'0' * 64}, {good.upper().replace('V1=', 'v1=')}"), source())


def test_the_same_signed_request_twice_is_a_replay() -> None:
    config = source()
    SPEC.verify(fixture("ringing__signed_inbound"), config)
    with pytest.raises(Replayed):
        SPEC.verify(fixture("ringing__signed_inbound"), config)


def test_a_new_signature_for_the_same_event_is_no_replay() -> None:
    config = source()
    SPEC.verify(signed(RINGING, timestamp=NOW), config)
    SPEC.verify(signed(RINGING, timestamp=NOW + 1), config)


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_beyond_the_tolerance_is_refused(offset: int) -> None:
    with pytest.raises(Replayed):
        SPEC.verify(signed(RINGING, timestamp=NOW + offset), source())


def test_the_tolerance_is_an_option() -> None:
    SPEC.verify(signed(RINGING, timestamp=NOW - 3000), source(tolerance_seconds=3600))
    with pytest.raises(Replayed):
        SPEC.verify(signed(RINGING, timestamp=NOW - 30), source(tolerance_seconds=10))


def test_a_replay_is_refused_as_long_as_its_timestamp_is_accepted() -> None:
    clock = [source_context("generic").now()]
    config = replace(source(), now=lambda: clock[0])
    SPEC.verify(signed(RINGING), config)
    clock[0] += timedelta(seconds=299)
    with pytest.raises(Replayed):
        SPEC.verify(signed(RINGING), config)


def test_a_signed_request_needs_a_body() -> None:
    request = RawRequest("GET", "https://commhub.example.com/hooks/generic",
                         {"X-Commhub-Timestamp": str(NOW), "X-Commhub-Signature": sign(SECRET, NOW, b"")},
                         {"event": "ringing", "call_id": "c-1", "direction": "in"})
    with pytest.raises(VerificationFailed):
        SPEC.verify(request, source())


# --- the URL token ----------------------------------------------------------------------------------

def test_an_unsigned_request_passes_with_the_token() -> None:
    SPEC.verify(unsigned(b"event=newCall&callId=1&direction=in", SECRET), source())


@pytest.mark.parametrize("token", [None, "", "whsec-generic-fixtures-7f3b"])
def test_an_unsigned_request_without_the_right_token_fails(token: str | None) -> None:
    with pytest.raises(VerificationFailed):
        SPEC.verify(unsigned(b"event=newCall&callId=1&direction=in", token), source())


def test_require_signature_refuses_the_token() -> None:
    with pytest.raises(VerificationFailed):
        SPEC.verify(unsigned(b"event=newCall&callId=1&direction=in", SECRET), source(require_signature=True))


def test_a_signed_request_is_judged_by_its_signature_even_with_the_token() -> None:
    request = replace(signed(RINGING, secret="wrong"), query={"token": SECRET})
    with pytest.raises(VerificationFailed):
        SPEC.verify(request, source())


# --- the README's signing recipes ---------------------------------------------------------------------

README = (ADAPTERS_DIR / "generic" / "README.md").read_text("utf-8")


def test_the_readme_test_vector_is_what_sign_computes() -> None:
    vector = re.search(r"secret `([^`]+)`, timestamp `(\d+)`, body `([^`]+)`\s*→\s*`(v1=[0-9a-f]{64})`", README)
    assert vector, "README.md lost its signing test vector"
    secret, timestamp, body, signature = vector.groups()
    assert sign(secret, int(timestamp), body.encode()) == signature


def test_the_readme_shell_recipe_signs_like_commhub() -> None:
    if shutil.which("openssl") is None:
        message = "openssl is not installed (Debian package openssl); the README's signing recipe needs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + " (not CI)")
    lines = re.search(r"```bash\n(ts=.*?\nsig=.*?)\n", README, re.S)
    assert lines, "README.md lost its shell recipe"
    script = f'SECRET={SECRET}\nbody=\'{json.dumps(RINGING)}\'\n{lines.group(1)}\necho "$ts $sig"\n'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert "v1=" + out[1] == sign(SECRET, int(out[0]), json.dumps(RINGING).encode())


# --- commhub's format ---------------------------------------------------------------------------------

def parse(body: dict[str, Any]) -> Any:
    return SPEC.parse(signed(body), source())


def test_targets_keep_their_order_without_duplicates() -> None:
    [event] = parse({**RINGING, "targets": ["10", "sales", "10"]})
    assert event.targets == ("10", "sales")


def test_an_outcome_on_a_ringing_event_is_not_taken() -> None:
    [event] = parse({**RINGING, "outcome": "busy"})
    assert event.outcome is None


def test_a_timestamp_in_unix_seconds_is_taken() -> None:
    [event] = parse({**RINGING, "timestamp": NOW})
    assert event.occurred_at is not None and event.occurred_at.timestamp() == NOW


def test_a_withheld_caller_stays_as_sent() -> None:
    [event] = parse({**RINGING, "from": "anonymous"})
    assert event.caller == "anonymous"


def test_an_empty_caller_is_no_caller() -> None:
    [event] = parse({**RINGING, "from": ""})
    assert event.caller is None


@pytest.mark.parametrize(("change", "field"), [
    ({"event": "hold"}, "event"),
    ({"event": ""}, "event"),
    ({"call_id": ""}, "call_id"),
    ({"direction": "inbound"}, "direction"),
    ({"event": "ended", "outcome": "lost"}, "outcome"),
    ({"timestamp": "2026-11-24T10:00:00"}, "timestamp"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"duration": -1}, "duration"),
    ({"duration": "long"}, "duration"),
])
def test_a_bad_field_is_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(BadPayload) as error:
        parse({**RINGING, **change})
    assert error.value.field == field


def test_a_json_body_that_is_no_object_is_refused() -> None:
    with pytest.raises(BadPayload):
        SPEC.parse(signed(b'["ringing"]'), source())


# --- Zammad's shape -----------------------------------------------------------------------------------

def zammad(body: str) -> Any:
    [event] = SPEC.parse(unsigned(body.encode(), SECRET), source())
    return event


def test_zammad_call_id_may_be_written_call_id() -> None:
    assert zammad("event=newCall&call_id=abc&direction=in&from=493055571600").call_id == "abc"


def test_zammad_without_call_id_names_callId() -> None:
    with pytest.raises(BadPayload) as error:
        zammad("event=newCall&direction=in&from=493055571600")
    assert error.value.field == "callId"


def test_zammad_numbers_are_e164_without_plus_but_national_and_withheld_stay() -> None:
    event = zammad("event=newCall&callId=1&direction=in&from=anonymous&to=02214710334")
    assert (event.caller, event.callee) == ("anonymous", "02214710334")


@pytest.mark.parametrize(("cause", "outcome"), [
    ("normalClearing", None), ("busy", Outcome.BUSY), ("cancel", Outcome.MISSED),
    ("noAnswer", Outcome.REJECTED), ("congestion", Outcome.FAILED), ("notFound", Outcome.FAILED),
    ("forwarded", Outcome.FORWARDED), ("somethingNew", None),
])
def test_zammad_hangup_causes(cause: str, outcome: Outcome | None) -> None:
    assert zammad(f"event=hangup&callId=1&direction=in&cause={cause}").outcome == outcome


def test_zammad_hangup_after_the_voicemail_answered_is_missed() -> None:
    event = zammad("event=hangup&callId=1&direction=in&cause=normalClearing&user=voicemail")
    assert (event.phase, event.outcome) == (Phase.ENDED, Outcome.MISSED)


def test_zammad_voicemail_rule_is_for_inbound_calls_only() -> None:
    event = zammad("event=answer&callId=1&direction=out&answeringNumber=voicemail")
    assert (event.phase, event.answered_by) == (Phase.ANSWERED, "voicemail")


def test_zammad_answer_falls_back_to_the_user_name() -> None:
    assert zammad("event=answer&callId=1&direction=in&user=John+Doe").answered_by == "John Doe"


def test_zammad_replies_with_an_empty_object() -> None:
    request = unsigned(b"event=hangup&callId=1&direction=in", SECRET)
    assert SPEC.reply(request, SPEC.parse(request, source()), source()).body == "{}"
