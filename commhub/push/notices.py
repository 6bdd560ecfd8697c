"""The messages between nodes: what one node's commit tells the others (PostgreSQL NOTIFY).

A notification carries the committed messages themselves while they fit (PostgreSQL takes at most
8000 bytes per payload); a message too large for one travels as its (agent, seq) and the receiving
node reads it from the backlog, where the same commit stored it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from commhub.push.message import Message

CHANNEL = "commhub_push"
PAYLOAD_LIMIT = 7900  # bytes; PostgreSQL refuses more than 8000


@dataclass(frozen=True, slots=True)
class Notice:
    messages: list[Message]  # complete, in order
    stored: list[tuple[int, int]]  # (agent, seq) to read from the backlog, in order


def encode_notices(messages: list[Message]) -> Iterator[str]:
    """As few payloads as the limit allows, keeping the messages' order."""
    chunk: list[str] = []
    size = 0
    for message in messages:
        inline = json.dumps([message.agent_id, message.seq, message.type, message.at, message.text],
                            ensure_ascii=False, separators=(",", ":"))
        item = inline if len(inline.encode()) < PAYLOAD_LIMIT - 16 else f"[{message.agent_id},{message.seq}]"
        if chunk and size + len(item.encode()) + 1 > PAYLOAD_LIMIT - 16:
            yield _envelope(chunk)
            chunk, size = [], 0
        chunk.append(item)
        size += len(item.encode()) + 1
    if chunk:
        yield _envelope(chunk)


def _envelope(items: list[str]) -> str:
    return '{"m":[' + ",".join(items) + "]}"


def decode_notice(payload: str) -> list[Message | tuple[int, int]]:
    """The payload's items in order: a Message, or the (agent, seq) of one to read from the backlog."""
    items: list[Message | tuple[int, int]] = []
    for item in json.loads(payload)["m"]:
        if len(item) == 2:
            items.append((int(item[0]), int(item[1])))
        else:
            agent_id, seq, type_, at, text = item
            items.append(Message(int(agent_id), int(seq), str(type_), str(text), float(at)))
    return items
