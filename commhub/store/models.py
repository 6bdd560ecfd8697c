"""The stored domain (DESIGN §2) as SQLAlchemy 2 tables.

Plain, portable types only: the same schema runs on SQLite and PostgreSQL. Times are stored in UTC
and always come back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
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
    # The email an entry shows (one entry per message, however many folders hold it).
    email_id: Mapped[int | None] = mapped_column(ForeignKey("emails.id", ondelete="SET NULL"), unique=True)
    # The id a client gave a note (`ref`): a note sent again after a lost confirmation is stored once.
    client_ref: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_history_entries_agent_ref", "agent_id", "client_ref", unique=True),)


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


class Blob(Base):
    """Raw messages and attachments, stored once per content (sha256), however many emails share them."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Email(Base):
    """One message, however many mailboxes and folders hold it (`message_key`: Message-ID or content hash)."""

    __tablename__ = "emails"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_key: Mapped[str] = mapped_column(String(400), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(400))
    thread_key: Mapped[str] = mapped_column(String(400), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(400))
    refs: Mapped[list[str]] = mapped_column(Json, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    direction: Mapped[str] = mapped_column(String(3), default="in")
    from_address: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(300), default="")
    addresses: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # role → [[name, address], …]
    text_body: Mapped[str] = mapped_column(Text, default="")
    html_body: Mapped[str | None] = mapped_column(Text)
    raw_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    flags: Mapped[list[str]] = mapped_column(Json, default=list)  # auto_reply, bounce, bulk
    problems: Mapped[list[str]] = mapped_column(Json, default=list)
    headers_only: Mapped[bool] = mapped_column(default=False)  # over the size limit: only the header was fetched
    unparsable: Mapped[bool] = mapped_column(default=False)  # kept raw, shown to admins
    status: Mapped[str] = mapped_column(String(16), default="received")
    assigned: Mapped[bool] = mapped_column(default=False)  # linked to at least one contact or organization
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (
        CheckConstraint("direction IN ('in', 'out')", name="direction"),
        CheckConstraint("status IN ('received', 'queued', 'sent', 'failed')", name="status"),
        Index("ix_emails_assigned_created", "assigned", "created_at"),
    )


class EmailLocation(Base):
    """Where the server keeps a message: (mailbox, folder, UIDVALIDITY, UID) names it forever."""

    __tablename__ = "email_locations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("emails.id", ondelete="CASCADE"), index=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(300))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("mailbox", "folder", "uidvalidity", "uid"),)


class EmailParticipant(Base):
    """Every address a message names, so mail is filed retroactively when a contact with it appears."""

    __tablename__ = "email_participants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("emails.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(320), index=True)
    domain: Mapped[str] = mapped_column(String(253), index=True)


class EmailAttachment(Base):
    __tablename__ = "email_attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("emails.id", ondelete="CASCADE"), index=True)
    blob_sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(500), default="")
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    content_id: Mapped[str | None] = mapped_column(String(300))
    inline: Mapped[bool] = mapped_column(default=False)


class MailCheckpoint(Base):
    """What of a folder is archived: everything up to `last_uid` under `uidvalidity`.

    Advanced in the transaction that stores the messages, so a crash never skips or repeats one.
    """

    __tablename__ = "mail_checkpoints"
    mailbox: Mapped[str] = mapped_column(String(64), primary_key=True)
    folder: Mapped[str] = mapped_column(String(300), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MailTombstone(Base):
    """An erased message's key and content hash (sha256): it is never filed again from the server."""

    __tablename__ = "mail_tombstones"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MailWarning(Base):
    """What an admin must see: an oversized or unparsable message, a mailbox that cannot be reached."""

    __tablename__ = "mail_warnings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str | None] = mapped_column(String(300))
    uid: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    email_id: Mapped[int | None] = mapped_column(ForeignKey("emails.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class OutboxMessage(Base):
    """Mail commhub sends: kept until the SMTP server took it, retried with growing pauses."""

    __tablename__ = "mail_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_id: Mapped[int | None] = mapped_column(ForeignKey("emails.id", ondelete="SET NULL"), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    mail_from: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(Json, default=list)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    appended: Mapped[bool] = mapped_column(default=False)  # copied to the Sent folder
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'sent', 'failed')", name="status"),
        Index("ix_mail_outbox_status_next", "status", "next_attempt_at"),
    )


class AuditEvent(Base):
    """Who read, changed, exported or erased which file, when and from where. Append-only: the
    migration adds triggers that refuse UPDATE and DELETE, so not even a bug in commhub rewrites it.

    Holds ids and counts, never names, numbers, addresses or bodies (`details` is written by
    `commhub.audit` only, from a fixed set of keys)."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # No foreign key: the trail must outlive an agent that is removed later.
    agent_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(100))  # "agent:3", "cli:root", "daemon", "anonymous"
    action: Mapped[str] = mapped_column(String(32))
    subject_kind: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(BigInteger)
    via: Mapped[str] = mapped_column(String(16))  # api, console, ws, cli, daemon
    client: Mapped[str | None] = mapped_column(String(64))  # the client's IP address
    route: Mapped[str | None] = mapped_column(String(200))  # "GET /api/contacts/{id}"
    status: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    __table_args__ = (Index("ix_audit_events_subject", "subject_kind", "subject_id", "at"),
                      Index("ix_audit_events_agent_at", "agent_id", "at"))


class ErasureTombstone(Base):
    """A number or address of a person erased on request, as a keyed digest (HMAC-SHA256 with the
    installation's `privacy_keys` key): an import of an old export cannot bring the person back
    unnoticed, and nobody can read the number back out of the table."""

    __tablename__ = "erasure_tombstones"
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # phone, email
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (CheckConstraint("kind IN ('phone', 'email')", name="kind"),)


class PrivacyKey(Base):
    """The installation's secret for keyed digests, made once at the first erasure."""

    __tablename__ = "privacy_keys"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
