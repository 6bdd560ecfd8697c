"""The stored domain (DESIGN §2) as SQLAlchemy 2 tables.

Plain, portable types only: the same schema runs on SQLite and PostgreSQL. Times are stored in UTC
and always come back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """SQLite forgets the zone; hand back aware UTC datetimes on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")


def partial_index(name: str, column: str) -> Index:
    """An index of the rows where `column` is set (the same predicate on SQLite and PostgreSQL)."""
    predicate = text(f"{column} IS NOT NULL")
    return Index(name, column, sqlite_where=predicate, postgresql_where=predicate)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Agent(Base, Timestamps):
    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    language: Mapped[str] = mapped_column(String(8), default="de")
    role: Mapped[str] = mapped_column(String(16), default="agent")
    active: Mapped[bool] = mapped_column(default=True)
    # Loaded only where asked for (selectinload): authentication runs on every request and needs none.
    extensions: Mapped[list[AgentExtension]] = relationship(
        back_populates="agent", cascade="all, delete-orphan", lazy="raise_on_sql")
    __table_args__ = (CheckConstraint("role IN ('agent', 'admin')", name="role"),)


class AgentExtension(Base):
    """An extension, user id or direct number that rings this agent (the routing key of call events)."""

    __tablename__ = "agent_extensions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    extension: Mapped[str] = mapped_column(String(64), unique=True)
    agent: Mapped[Agent] = relationship(back_populates="extensions")


class AgentToken(Base):
    __tablename__ = "agent_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Organization(Base, Timestamps):
    __tablename__ = "organizations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200), index=True)  # folded, for search and matching
    customer_class: Mapped[str | None] = mapped_column(String(1))
    street: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(100))
    domain: Mapped[str | None] = mapped_column(String(253), index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    owner_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    __table_args__ = (CheckConstraint("customer_class IN ('A', 'B', 'C')", name="class"),)


class Contact(Base, Timestamps):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), index=True)
    salutation: Mapped[str | None] = mapped_column(String(50))
    title: Mapped[str | None] = mapped_column(String(50))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(220))  # folded "last first", for search and matching
    position: Mapped[str | None] = mapped_column(String(100))
    customer_class: Mapped[str | None] = mapped_column(String(1))
    street: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(100))
    attributes: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    owner_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    __table_args__ = (
        CheckConstraint("customer_class IN ('A', 'B', 'C')", name="class"),
        # The importer matches "same name in the same company"; the name alone is a prefix of it.
        Index("ix_contacts_name_key_organization", "name_key", "organization_id"),
    )


class PhoneNumberRow(Base):
    __tablename__ = "phone_numbers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="work")
    raw: Mapped[str] = mapped_column(String(100))
    e164: Mapped[str | None] = mapped_column(String(20), index=True)
    extension: Mapped[str | None] = mapped_column(String(20))
    # Set for switchboard numbers only: the E.164 digits a direct-dial number of that company starts with.
    switchboard_prefix: Mapped[str | None] = mapped_column(String(20))
    __table_args__ = (
        CheckConstraint("(contact_id IS NULL) <> (organization_id IS NULL)", name="one_owner"),
        CheckConstraint("kind IN ('work', 'mobile', 'home', 'fax', 'switchboard')", name="kind"),
        # Most numbers belong to people and are no switchboard: partial indexes stay small and cheap to write.
        partial_index("ix_phone_numbers_organization_id", "organization_id"),
        partial_index("ix_phone_numbers_switchboard_prefix", "switchboard_prefix"),
    )


class EmailAddressRow(Base):
    __tablename__ = "email_addresses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320), index=True)  # normalised: lower case, trimmed
    raw: Mapped[str] = mapped_column(String(320))
    __table_args__ = (
        CheckConstraint("(contact_id IS NULL) <> (organization_id IS NULL)", name="one_owner"),
        partial_index("ix_email_addresses_organization_id", "organization_id"),
    )


class HistoryEntry(Base):
    __tablename__ = "history_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    title: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # The call an entry belongs to: the call itself and every note written on it share it.
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HistoryLink(Base):
    """Puts an entry on the timeline of one contact or organization (an email to three customers: three links).

    `occurred_at` is copied from the entry so a timeline page is one index range scan.
    """

    __tablename__ = "history_links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("history_entries.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    __table_args__ = (
        CheckConstraint("(contact_id IS NULL) <> (organization_id IS NULL)", name="one_owner"),
        UniqueConstraint("entry_id", "contact_id"),
        UniqueConstraint("entry_id", "organization_id"),
        Index("ix_history_links_contact_time", "contact_id", "occurred_at", "entry_id"),
        Index("ix_history_links_organization_time", "organization_id", "occurred_at", "entry_id"),
    )


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="follow_up")
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default="open")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assignee_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    phone_e164: Mapped[str | None] = mapped_column(String(20))  # the number to call back
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    __table_args__ = (
        CheckConstraint("kind IN ('callback', 'follow_up')", name="kind"),
        CheckConstraint("status IN ('open', 'done', 'cancelled')", name="status"),
        Index("ix_tasks_status_assignee", "status", "assignee_agent_id"),
        Index("ix_tasks_phone_status", "phone_e164", "status"),
    )


class Call(Base):
    """One phone call as commhub knows it: the state machine's state plus what the pop showed."""

    __tablename__ = "calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    provider_call_id: Mapped[str] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16))
    caller_raw: Mapped[str | None] = mapped_column(String(200))
    caller_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    caller_name: Mapped[str | None] = mapped_column(String(200))
    withheld: Mapped[bool] = mapped_column(default=False)
    callee_raw: Mapped[str | None] = mapped_column(String(200))
    customer_e164: Mapped[str | None] = mapped_column(String(20))  # the customer's side: caller in, callee out
    targets: Mapped[list[str]] = mapped_column(Json, default=list)
    agent_ids: Mapped[list[int]] = mapped_column(Json, default=list)  # the agents it rang
    answered_by: Mapped[str | None] = mapped_column(String(200))
    answered_by_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration: Mapped[int | None] = mapped_column(Integer)
    vendor_outcome: Mapped[str | None] = mapped_column(String(16))
    matches: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)  # ranked candidates at ringing
    related_call_id: Mapped[str | None] = mapped_column(String(200))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    __table_args__ = (
        UniqueConstraint("source", "provider_call_id"),
        CheckConstraint("direction IN ('in', 'out')", name="direction"),
        CheckConstraint("state IN ('ringing', 'answered', 'completed', 'missed', 'rejected', 'busy', 'failed', 'forwarded')",
                        name="state"),
        Index("ix_calls_state_started", "state", "started_at"),
        Index("ix_calls_started", "started_at"),
    )


class CallEventRow(Base):
    """Every distinct event received for a call; the unique key makes a redelivery a no-op."""

    __tablename__ = "call_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    phase: Mapped[str] = mapped_column(String(16))
    dedupe_key: Mapped[str] = mapped_column(String(400))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    __table_args__ = (UniqueConstraint("call_id", "dedupe_key"),)


class AgentMessage(Base):
    """The per-agent backlog of WebSocket messages: what `resume` replays to a reconnecting client."""

    __tablename__ = "agent_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    __table_args__ = (UniqueConstraint("agent_id", "seq"),)
