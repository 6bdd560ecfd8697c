"""Which agents a call rings: its targets mapped through the agents' extensions, else a fallback.

CTI-NOTES: "a pop on every agent instead of the ringing one" is the complaint users file most
(zammad #2177, #2044). A call goes to the agents whose extension, user id or direct number it names;
only a call whose targets map to nobody goes to the source's `fallback_agents`, or else to every
active agent, so that no customer rings unseen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from commhub.contacts.phone import normalise
from commhub.store.call_sql import CallSql


def routing_keys(values: Iterable[str | None], region: str) -> list[str]:
    """The keys to look up: each value as sent, and as E.164 when it is a phone number."""
    keys: list[str] = []
    for value in values:
        if value:
            keys.extend(_keys_of(value.strip(), region))
    return list(dict.fromkeys(keys))


# Extensions and the company's own numbers come back on every call: parse each once.
@lru_cache(maxsize=4096)
def _keys_of(value: str, region: str) -> tuple[str, ...]:
    number = normalise(value, region)
    return (value, number.e164) if number.e164 and number.e164 != value else (value,)


def route(sql: CallSql, keys: list[str], options: Mapping[str, Any]) -> tuple[list[int], bool]:
    """(agent ids, whether the fallback was used)."""
    agents = sql.agents_for_keys(keys)
    if agents:
        return agents, False
    names = options.get("fallback_agents")
    return sql.active_agents(list(names) if names else None), True
