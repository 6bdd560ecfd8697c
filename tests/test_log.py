"""Logs are JSON lines and never carry a phone number or an email address in clear at info level."""

from __future__ import annotations

import json

import pytest
import structlog

from commhub.log import configure_logging, get_logger, mask_text


def test_masks_numbers_and_addresses_but_not_dates_or_ids() -> None:
    text = "call from +49 30 1234567 for max.mustermann@firma.de on 2026-11-24 (24.11.2026), call 42"
    masked = mask_text(text)
    assert "1234567" not in masked and "mustermann" not in masked
    assert "+49301****67" in masked and "m***@firma.de" in masked
    assert "2026-11-24" in masked and "24.11.2026" in masked and "call 42" in masked


def test_info_events_are_masked_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    try:
        get_logger("t").info("call.popped", caller="+49 171 2345678", to=["anna@example.com"], call_id="c-1")
        get_logger("t").debug("hidden", caller="+49 171 2345678")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 1
    event = lines[0]
    assert event["event"] == "call.popped" and event["level"] == "info" and event["call_id"] == "c-1"
    assert event["caller"] == "+49171*****78" and event["to"] == ["a***@example.com"]


def test_debug_keeps_clear_text_for_troubleshooting(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", "json")
    try:
        get_logger("t").debug("lookup", caller="+49 171 2345678")
    finally:
        structlog.reset_defaults()
    assert json.loads(capsys.readouterr().err)["caller"] == "+49 171 2345678"
