"""Vendor fixtures as captured HTTP requests: `<event>__<variant>.http` beside each adapter.

File format: the request line, header lines, one empty line, then the raw body *byte for byte*
(signatures cover it, so the files are marked `-text` in .gitattributes and must not end with an
added newline unless the vendor sent one). The public URL is `https://{Host}{target}`.
Beside each `.http` file, `<same name>.json` says what commhub must make of it:
`{"events": [...]}`, `{"ignored": true}` or `{"error": {"status": 400, "field": "callId"}}`.
Each adapter's `fixtures/source.json` holds the source config the fixtures were signed for:
`{"secret": …, "options": {…}, "now": "ISO time the signatures are valid at"}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from multidict import CIMultiDict

from commhub.telephony.contract import CallEvent, RawRequest, SourceContext
from commhub.telephony.replay import MemoryReplayGuard

ADAPTERS_DIR = Path(__file__).resolve().parents[2] / "adapters"


@dataclass(frozen=True)
class HttpFixture:
    path: Path
    method: str
    target: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def url(self) -> str:
        return f"https://{self.headers.get('Host', 'commhub.example.com')}{self.target}"

    def request(self, received_at: datetime | None = None) -> RawRequest:
        extra = {"received_at": received_at} if received_at else {}
        return RawRequest(method=self.method, url=self.url, headers=self.headers,
                          query=dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True)),
                          body=self.body, **extra)

    def expected(self) -> dict[str, Any]:
        return json.loads(self.path.with_suffix(".json").read_text("utf-8"))


def read_fixture(path: Path) -> HttpFixture:
    raw = path.read_bytes()
    ends = [(raw.find(mark), mark) for mark in (b"\r\n\r\n", b"\n\n") if raw.find(mark) != -1]
    if ends:
        at, mark = min(ends)
        head, body = raw[:at], raw[at + len(mark):]
    else:
        head, body = raw.rstrip(b"\r\n"), b""
    lines = head.decode("utf-8").splitlines()
    method, target, _version = lines[0].split(" ", 2)
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    return HttpFixture(path, method, target, headers, body)


def adapter_fixtures(adapter: str) -> list[Path]:
    return sorted((ADAPTERS_DIR / adapter / "fixtures").glob("*.http"))


def source_context(adapter: str, *, hook_url: str | None = None) -> SourceContext:
    config = json.loads((ADAPTERS_DIR / adapter / "fixtures" / "source.json").read_text("utf-8"))
    now = datetime.fromisoformat(config["now"]) if config.get("now") else None
    clock = (lambda: now) if now else None
    extra = {"now": clock} if clock else {}
    return SourceContext(name=adapter, secret=config.get("secret"), options=config.get("options", {}),
                         hook_url=hook_url or f"https://commhub.example.com/hooks/{adapter}",
                         replay=MemoryReplayGuard(**({"now": clock} if clock else {})), **extra)


def event_json(event: CallEvent) -> dict[str, Any]:
    """An event as the expectation files write it: only the fields that are set."""
    out: dict[str, Any] = {}
    for name, value in event.__dict__.items():
        if value is None or value == ():
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = str(value) if hasattr(value, "value") else value
    return out
