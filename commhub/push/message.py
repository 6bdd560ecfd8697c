"""One message for one agent's sockets, as stored and as sent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    agent_id: int
    seq: int
    type: str
    text: str  # the JSON the socket sends
    at: float = 0.0  # when it was staged (epoch seconds): pop latency is measured from here


def encode(type_: str, seq: int, ts: datetime, payload: dict[str, Any]) -> str:
    return json.dumps({"type": type_, "seq": seq, "ts": ts.isoformat(), **payload}, ensure_ascii=False,
                      separators=(",", ":"))
