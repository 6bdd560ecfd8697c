"""Structured logging: JSON lines by default, a readable console format for development.

Personal data never reaches the log in clear at info level: phone numbers and email addresses in any
field are masked (`+49301****67`, `m***@firma.de`); at debug level they are kept for troubleshooting.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Dates are tried first so that "2026-11-24" or "24.11.2026" is never taken for a phone number;
# anything else of seven or more digits with the usual separators is one.
_DATE_OR_PHONE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?|\d{1,2}\.\d{1,2}\.\d{2,4})"
    r"|(?P<phone>\+?\d[\d ()/.-]{5,}\d)")


def mask_phone(text: str) -> str:
    digits = re.sub(r"\D", "", text)
    prefix = "+" if text.startswith("+") else ""
    keep_head = min(5, max(len(digits) - 6, 1))
    return prefix + digits[:keep_head] + "*" * (len(digits) - keep_head - 2) + digits[-2:]


def mask_text(text: str) -> str:
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _DATE_OR_PHONE.sub(_mask_phone_match, text)


def _mask_phone_match(match: re.Match[str]) -> str:
    return match.group(0) if match.group("date") else mask_phone(match.group(0))


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


# Fields that are identifiers or measurements, not personal data; masking them would only hide facts.
_UNMASKED = frozenset({"event", "level", "timestamp", "logger", "call_id", "seq", "ms", "count", "id"})


def mask_personal_data(_logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    if method == "debug":
        return event
    return {k: (v if k in _UNMASKED else _mask(v)) for k, v in event.items()}


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_personal_data,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written, not when logging was configured: a CLI verb
    run inside another program (a test runner, a notebook) must not keep writing to a stream that
    program has since closed."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
