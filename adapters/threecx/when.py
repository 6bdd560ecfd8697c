"""3CX journal dates and durations, parsed defensively.

3CX formats `[DateTime]` with the PBX's locale ("24.11.2026 10:00:00", "11/24/2026 10:00:00 AM",
ISO, …) and `[Duration]` as a .NET TimeSpan ("00:03:25"). Nothing here raises: a value commhub
cannot read becomes None, the journal entry is still stored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from commhub.telephony.contract import EARLIEST, LATEST, MAX_SECONDS

# Day-first before month-first for slashes without AM/PM: en-US writes AM/PM, en-GB/fr-FR do not.
LOCAL_FORMATS = (
    "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M",
    "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p",
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
    "%d-%m-%Y %H:%M:%S", "%Y/%m/%d %H:%M:%S",
)
TIMESPAN = re.compile(r"^(?:(\d{1,9})\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?$", re.ASCII)


def journal_time(text: str | None, zone_name: str | None) -> datetime | None:
    """A 3CX date as UTC; one without an offset is read in `zone_name` (UTC when unset)."""
    if not text:
        return None
    when = _iso(text) or _local(text)
    if when is None:
        return None
    if when.tzinfo is None:
        zone = _zone(zone_name)
        if zone is None:
            return None
        when = when.replace(tzinfo=zone)
    try:
        when = when.astimezone(UTC)
    except (OverflowError, ValueError):  # the year 1 east of UTC, the year 9999 west of it
        return None
    return when if EARLIEST <= when < LATEST else None


def seconds(text: str | None) -> int | None:
    """"00:03:25" -> 205; "03:25" and plain "205" too; anything else None."""
    if not text:
        return None
    text = text.strip()
    if text.isascii() and text.isdigit():
        return int(text) if len(text) <= 10 and int(text) <= MAX_SECONDS else None
    if re.fullmatch(r"\d{1,2}:\d{2}", text, re.ASCII):
        text = "00:" + text
    match = TIMESPAN.match(text)
    if match is None:
        return None
    days, hours, minutes, secs = (int(part or 0) for part in match.groups())
    if minutes > 59 or secs > 59:
        return None
    total = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    return total if total <= MAX_SECONDS else None


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _local(text: str) -> datetime | None:
    text = " ".join(text.split())
    for pattern in LOCAL_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None  # a misconfigured zone must not put journal entries at a wrong hour
