"""The audit trail: who read, changed, exported or erased which file, when, and from where.

Rows hold ids, counts and the client's address; never a name, number, address or text. `details`
is built here from a fixed vocabulary (`DETAIL_KEYS`), so no caller can slip personal data into
it by accident. The table refuses UPDATE and DELETE (migration 0005).
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from commhub.errors import BadRequest
from commhub.store.models import Agent, AuditEvent, utcnow

ACTIONS = ("read", "search", "list", "create", "change", "delete", "export", "erase", "retention", "denied",
           "sign_in", "token_revoked")
# Counts and kinds only: what an erasure removed, which search fields were used, how many rows an import touched.
DETAIL_KEYS = frozenset({"by", "count", "kind", "entries_deleted", "entries_kept", "emails_erased",
                         "calls_deleted", "calls_kept", "tasks_deleted", "blobs_deleted", "numbers", "addresses",
                         "messages_dropped", "files", "bytes", "created", "updated", "rejected", "duplicate",
                         "kinds", "months", "reason"})


@dataclass(frozen=True, slots=True)
class Actor:
    agent_id: int | None
    label: str  # agent:3, cli:root, daemon, anonymous
    via: str  # api, console, ws, cli, daemon
    client: str | None = None

    @classmethod
    def of_agent(cls, agent: Agent, via: str, client: str | None) -> Actor:
        return cls(agent.id, f"agent:{agent.id}", via, client)

    @classmethod
    def cli(cls) -> Actor:
        return cls(None, f"cli:{_os_user()}", "cli")


DAEMON = Actor(None, "daemon", "daemon")


def _os_user() -> str:
    try:
        return getpass.getuser()[:60]
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return "unknown"


def clean_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    unknown = set(details or {}) - DETAIL_KEYS
    if unknown:
        raise ValueError(f"audit details may not carry {sorted(unknown)}")
    return dict(details or {})


def record(session: AsyncSession, actor: Actor, action: str, subject_kind: str | None = None,
           subject_id: int | None = None, *, route: str | None = None, status: int | None = None,
           details: Mapping[str, Any] | None = None, at: datetime | None = None) -> AuditEvent:
    """Add one event to the session; it is written with the caller's transaction."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(at=at or utcnow(), agent_id=actor.agent_id, actor=actor.label, action=action,
                       subject_kind=subject_kind, subject_id=subject_id, via=actor.via, client=actor.client,
                       route=route, status=status, details=clean_details(details))
    session.add(event)
    return event


@dataclass(frozen=True, slots=True)
class AuditQuery:
    subject_kind: str | None = None
    subject_id: int | None = None
    agent_id: int | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None  # paging: events with a smaller id
    limit: int = 100

    def __post_init__(self) -> None:
        if self.action is not None and self.action not in ACTIONS:
            raise BadRequest(f"unknown action {self.action!r}; one of {', '.join(ACTIONS)}")


async def query(session: AsyncSession, wanted: AuditQuery) -> Sequence[AuditEvent]:
    """Newest first."""
    statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(wanted.limit)
    conditions = {AuditEvent.subject_kind: wanted.subject_kind, AuditEvent.subject_id: wanted.subject_id,
                  AuditEvent.agent_id: wanted.agent_id, AuditEvent.action: wanted.action}
    for column, value in conditions.items():
        if value is not None:
            statement = statement.where(column == value)
    if wanted.since is not None:
        statement = statement.where(AuditEvent.at >= wanted.since)
    if wanted.until is not None:
        statement = statement.where(AuditEvent.at < wanted.until)
    if wanted.before is not None:
        statement = statement.where(AuditEvent.id < wanted.before)
    return list(await session.scalars(statement))


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": event.at.isoformat(), "agent_id": event.agent_id, "actor": event.actor,
            "action": event.action, "subject": _subject(event), "via": event.via, "client": event.client,
            "route": event.route, "status": event.status, "details": event.details}


def _subject(event: AuditEvent) -> str | None:
    if event.subject_kind is None:
        return None
    return event.subject_kind if event.subject_id is None else f"{event.subject_kind}:{event.subject_id}"
