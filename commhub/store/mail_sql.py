"""The mail archive's SQL: filing a batch of fetched messages in one transaction, and filing again.

Written once for both backends on `SqlDb` (see sql_db.py): a batch of 100 messages costs a few
dozen statements, not a few hundred ORM round trips. Exactly-once rests on three keys:
`emails.message_key` (one row per message however many folders hold it), the unique
(mailbox, folder, UIDVALIDITY, UID) of `email_locations`, and the folder's checkpoint, which moves
in the same transaction as the messages it covers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from commhub.mail.filing import FILING_ROLES, OwnAddresses, Targets, domain_of, lookup_keys, targets
from commhub.mail.parse import Address, ParsedMail
from commhub.mail.preparing import Prepared, sha256
from commhub.store.sql_db import SqlDb, expand, write_json

BODY_IN_HISTORY = 2000
IN_LIST = 500  # values per `IN (…)`: far below SQLite's parameter limit, small enough to plan well  # characters of the text shown in the timeline; the whole text stays on the email


@dataclass(slots=True)
class Outgoing:
    """A message commhub sends: filed at once, before the SMTP server has it."""

    key: str
    raw: bytes
    parsed: ParsedMail
    status: str
    agent_id: int | None
    contact_ids: list[int] = field(default_factory=list)
    organization_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    email_id: int | None
    raw: bytes
    status: str
    attempts: int
    created_at: datetime | None
    appended: bool


@dataclass(slots=True)
class BatchResult:
    filed: list[int] = field(default_factory=list)  # new emails
    known: int = 0  # already archived (another folder, a rescan): location added
    erased: int = 0  # tombstoned: skipped
    warnings: int = 0


def _participants(parsed: ParsedMail) -> list[tuple[str, Address]]:
    roles = (("from", parsed.from_), ("sender", parsed.sender), ("reply_to", parsed.reply_to),
             ("to", parsed.to), ("cc", parsed.cc), ("bcc", parsed.bcc))
    return [(role, address) for role, addresses in roles for address in addresses]


def _filing_addresses(participants: Iterable[tuple[str, str]]) -> set[str]:
    return {address for role, address in participants if role in FILING_ROLES}


class MailSql:
    def __init__(self, db: SqlDb) -> None:
        self.db = db

    # --- checkpoints -----------------------------------------------------------------------------

    def checkpoint(self, mailbox: str, folder: str) -> tuple[int, int] | None:
        rows = self.db.rows("SELECT uidvalidity, last_uid FROM mail_checkpoints WHERE mailbox = :m AND folder = :f",
                            {"m": mailbox, "f": folder})
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def save_checkpoint(self, mailbox: str, folder: str, uidvalidity: int, last_uid: int, now: datetime) -> None:
        self.db.execute(
            "INSERT INTO mail_checkpoints (mailbox, folder, uidvalidity, last_uid, updated_at) "
            "VALUES (:m, :f, :v, :u, :now) ON CONFLICT (mailbox, folder) DO UPDATE SET "
            "uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, updated_at = excluded.updated_at",
            {"m": mailbox, "f": folder, "v": uidvalidity, "u": last_uid, "now": self.db.time(now)})

    # --- filing a batch --------------------------------------------------------------------------

    def file_batch(self, mailbox: str, folder: str, uidvalidity: int, items: Sequence[Prepared],
                   own: OwnAddresses, last_uid: int, now: datetime) -> BatchResult:
        """Store a batch and move the checkpoint to `last_uid`, all or nothing."""
        result = BatchResult()
        erased = self._tombstoned([h for item in items for h in (item.key_sha256, item.raw_sha256)])
        known = self._email_ids([item.key for item in items])
        fresh: dict[str, Prepared] = {}
        for item in items:
            if item.key_sha256 in erased or item.raw_sha256 in erased:
                result.erased += 1
            elif item.key not in known and item.key not in fresh:
                fresh[item.key] = item
        parsed_items = [(item, item.parsed) for item in fresh.values() if item.parsed is not None]
        by_address, by_domain = self._lookup(
            {a.address for _, parsed in parsed_items for _, a in _participants(parsed)}, own)
        threads = self._thread_keys({p.in_reply_to for _, p in parsed_items if p.in_reply_to and not p.references})
        self._blobs([(item.raw_sha256, item.raw) for item in fresh.values()]
                    + [(digest, a.data) for item, p in parsed_items
                       for a, digest in zip(p.attachments, item.attachment_sha256, strict=True)], now)
        for item in fresh.values():
            email_id = self._insert_received(item, own, by_address, by_domain, threads, now)
            known[item.key] = email_id
            result.filed.append(email_id)
            if item.header_only or item.parsed is None:
                kind = "oversized" if item.header_only else "unparsable"
                detail = (f"{item.size} bytes: filed from its header only" if item.header_only
                          else f"kept raw: {item.problem}")
                self.warn(mailbox, folder, item.uid, kind, detail, email_id, now)
                result.warnings += 1
        result.known = sum(1 for item in items if item.key in known) - len(result.filed)
        self.db.many(
            "INSERT INTO email_locations (email_id, mailbox, folder, uidvalidity, uid) "
            "VALUES (:email, :m, :f, :v, :uid) ON CONFLICT DO NOTHING",
            [{"email": known[item.key], "m": mailbox, "f": folder, "v": uidvalidity, "uid": item.uid}
             for item in items if item.key in known])
        self.save_checkpoint(mailbox, folder, uidvalidity, last_uid, now)
        return result

    def _tombstoned(self, hashes: list[str]) -> set[str]:
        params: dict[str, Any] = {}
        sql = expand("SELECT sha256 FROM mail_tombstones WHERE sha256 IN :h", "h", hashes, params)
        return {row[0] for row in self.db.rows(sql, params)}

    def _email_ids(self, keys: Iterable[str]) -> dict[str, int]:
        params: dict[str, Any] = {}
        sql = expand("SELECT message_key, id FROM emails WHERE message_key IN :k", "k", list(set(keys)), params)
        return {row[0]: row[1] for row in self.db.rows(sql, params)}

    def _thread_keys(self, parents: set[str]) -> dict[str, str]:
        params: dict[str, Any] = {}
        sql = expand("SELECT message_key, thread_key FROM emails WHERE message_key IN :k", "k", list(parents), params)
        return {row[0]: row[1] for row in self.db.rows(sql, params)}

    def _lookup(self, addresses: set[str], own: OwnAddresses
                ) -> tuple[dict[str, list[tuple[int | None, int | None]]], dict[str, list[int]]]:
        wanted, domains = lookup_keys(addresses, own)
        by_address: dict[str, list[tuple[int | None, int | None]]] = defaultdict(list)
        by_domain: dict[str, list[int]] = defaultdict(list)
        if wanted:
            params: dict[str, Any] = {}
            sql = expand("SELECT address, contact_id, organization_id FROM email_addresses WHERE address IN :a",
                         "a", sorted(wanted), params)
            for address, contact_id, organization_id in self.db.rows(sql, params):
                by_address[address].append((contact_id, organization_id))
        if domains:
            params = {}
            sql = expand("SELECT domain, id FROM organizations WHERE domain IN :d", "d", sorted(domains), params)
            for domain, organization_id in self.db.rows(sql, params):
                by_domain[domain].append(organization_id)
        return by_address, by_domain

    def _blobs(self, blobs: list[tuple[str, bytes]], now: datetime) -> None:
        unique = {digest: data for digest, data in blobs}
        self.db.many("INSERT INTO blobs (sha256, size, data, created_at) VALUES (:h, :size, :data, :now) "
                     "ON CONFLICT DO NOTHING",
                     [{"h": h, "size": len(data), "data": data, "now": self.db.time(now)} for h, data in unique.items()])

    def _insert_received(self, item: Prepared, own: OwnAddresses,
                         by_address: dict[str, list[tuple[int | None, int | None]]],
                         by_domain: dict[str, list[int]], threads: dict[str, str], now: datetime) -> int:
        parsed = item.parsed
        if parsed is None:
            return self._insert_email(key=item.key, parsed=None, raw_sha256=item.raw_sha256, size=item.size,
                                      thread_key=item.key, direction="in", status="received",
                                      header_only=False, unparsable=True, problems=[item.problem or "unparsable"],
                                      assigned=False, now=now)
        participants = [(role, a.address) for role, a in _participants(parsed)]
        found = targets(_filing_addresses(participants), own, by_address, by_domain)
        sender = parsed.from_[0].address if parsed.from_ else None
        direction = "out" if sender in own.addresses else "in"
        email_id = self._insert_email(
            key=item.key, parsed=parsed, raw_sha256=item.raw_sha256, size=item.size,
            thread_key=thread_key(parsed, item.key, threads), direction=direction, status="received",
            header_only=item.header_only, unparsable=False, problems=parsed.problems, assigned=bool(found), now=now)
        self._insert_details(email_id, parsed, participants, item.attachment_sha256)
        self._insert_entry(email_id, parsed, direction, found, None, now)
        return email_id

    def _insert_email(self, *, key: str, parsed: ParsedMail | None, raw_sha256: str, size: int, thread_key: str,
                      direction: str, status: str, header_only: bool, unparsable: bool, problems: list[str],
                      assigned: bool, now: datetime) -> int:
        p = parsed
        addresses = {role: [[a.name, a.address] for a in found] for role, found in (
            ("from", p.from_), ("sender", p.sender), ("reply_to", p.reply_to), ("to", p.to), ("cc", p.cc),
            ("bcc", p.bcc))} if p else {}
        sender = p.from_[0] if p and p.from_ else None
        return self.db.rows(
            "INSERT INTO emails (message_key, message_id, thread_key, in_reply_to, refs, subject, sent_at, direction, "
            "from_address, from_name, addresses, text_body, html_body, raw_sha256, size, flags, problems, "
            "headers_only, unparsable, status, assigned, created_at) VALUES (:key, :mid, :thread, :irt, :refs, "
            ":subject, :sent, :direction, :from_address, :from_name, :addresses, :text, :html, :raw, :size, :flags, "
            ":problems, :headers_only, :unparsable, :status, :assigned, :now) RETURNING id",
            {"key": key, "mid": p.message_id if p else None, "thread": thread_key,
             "irt": p.in_reply_to if p else None, "refs": write_json(p.references if p else []),
             "subject": p.subject if p else "", "sent": self.db.time(p.sent_at) if p else None,
             "direction": direction, "from_address": sender.address if sender else None,
             "from_name": sender.name[:300] if sender else "", "addresses": write_json(addresses),
             "text": p.text if p else "", "html": p.html if p else None, "raw": raw_sha256, "size": size,
             "flags": write_json(sorted(p.flags) if p else []), "problems": write_json(problems),
             "headers_only": header_only, "unparsable": unparsable, "status": status, "assigned": assigned,
             "now": self.db.time(now)})[0][0]

    def _insert_details(self, email_id: int, parsed: ParsedMail, participants: list[tuple[str, str]],
                        attachment_sha256: list[str]) -> None:
        self.db.many("INSERT INTO email_participants (email_id, role, address, domain) VALUES (:e, :r, :a, :d)",
                     [{"e": email_id, "r": role, "a": address[:320], "d": domain_of(address)[:253]}
                      for role, address in dict.fromkeys(participants)])
        self.db.many(
            "INSERT INTO email_attachments (email_id, blob_sha256, filename, content_type, size, content_id, inline) "
            "VALUES (:e, :h, :name, :type, :size, :cid, :inline)",
            [{"e": email_id, "h": digest, "name": a.filename[:500], "type": a.content_type[:200],
              "size": len(a.data), "cid": a.content_id[:300] if a.content_id else None, "inline": a.inline}
             for a, digest in zip(parsed.attachments, attachment_sha256, strict=True)])

    def _insert_entry(self, email_id: int, parsed: ParsedMail, direction: str, found: Targets,
                      agent_id: int | None, now: datetime) -> int:
        sender = parsed.from_[0] if parsed.from_ else None
        data = {"email_id": email_id, "direction": direction,
                "from": {"name": sender.name, "address": sender.address} if sender else None,
                "to": [a.address for a in parsed.to], "cc": [a.address for a in parsed.cc],
                "attachments": sum(1 for a in parsed.attachments if not a.inline), "flags": sorted(parsed.flags)}
        at = self.db.time(parsed.sent_at or now)
        entry_id = self.db.rows(
            "INSERT INTO history_entries (kind, occurred_at, title, body, data, agent_id, email_id, created_at) "
            "VALUES ('email', :at, :title, :body, :data, :agent, :email, :now) RETURNING id",
            {"at": at, "title": parsed.subject[:300], "body": parsed.text[:BODY_IN_HISTORY], "data": write_json(data),
             "agent": agent_id, "email": email_id, "now": self.db.time(now)})[0][0]
        self._link(entry_id, at, found)
        return entry_id

    def _link(self, entry_id: int, at: Any, found: Targets) -> None:
        self.db.many("INSERT INTO history_links (entry_id, contact_id, organization_id, occurred_at) "
                     "VALUES (:entry, :contact, :org, :at) ON CONFLICT DO NOTHING",
                     [{"entry": entry_id, "contact": c, "org": None, "at": at} for c in found.contact_ids]
                     + [{"entry": entry_id, "contact": None, "org": o, "at": at} for o in found.organization_ids])

    # --- mail commhub sends ----------------------------------------------------------------------

    def file_outgoing(self, mail: Outgoing, own: OwnAddresses, now: datetime) -> int:
        parsed = mail.parsed
        participants = [(role, a.address) for role, a in _participants(parsed)]
        by_address, by_domain = self._lookup(_filing_addresses(participants), own)
        found = targets(_filing_addresses(participants), own, by_address, by_domain)
        found = Targets(tuple(dict.fromkeys([*mail.contact_ids, *found.contact_ids])),
                        tuple(dict.fromkeys([*mail.organization_ids, *found.organization_ids])))
        raw_sha256 = sha256(mail.raw)
        attachment_sha256 = [sha256(a.data) for a in parsed.attachments]
        self._blobs([(raw_sha256, mail.raw)] + list(zip(attachment_sha256, (a.data for a in parsed.attachments),
                                                         strict=True)), now)
        threads = self._thread_keys({parsed.in_reply_to} if parsed.in_reply_to and not parsed.references else set())
        email_id = self._insert_email(
            key=mail.key, parsed=parsed, raw_sha256=raw_sha256, size=len(mail.raw),
            thread_key=thread_key(parsed, mail.key, threads), direction="out", status=mail.status,
            header_only=False, unparsable=False, problems=[], assigned=bool(found), now=now)
        self._insert_details(email_id, parsed, participants, attachment_sha256)
        self._insert_entry(email_id, parsed, "out", found, mail.agent_id, now)
        return email_id

    def set_status(self, email_id: int, status: str) -> None:
        self.db.execute("UPDATE emails SET status = :s WHERE id = :id", {"s": status, "id": email_id})

    # --- the outbox ------------------------------------------------------------------------------

    def queue(self, email_id: int, raw: bytes, mail_from: str, recipients: list[str], now: datetime,
              first_attempt_at: datetime | None = None) -> int:
        return self.db.rows(
            "INSERT INTO mail_outbox (email_id, raw, mail_from, recipients, status, attempts, next_attempt_at, "
            "appended, created_at) VALUES (:e, :raw, :sender, :rcpt, 'queued', 0, :first, :no, :now) RETURNING id",
            {"e": email_id, "raw": raw, "sender": mail_from, "rcpt": write_json(recipients), "now": self.db.time(now),
             "first": self.db.time(first_attempt_at or now), "no": False})[0][0]

    def outbox_due(self, now: datetime, limit: int = 20) -> list[OutboxRow]:
        """Queued messages whose next attempt is due, and sent ones not yet copied to the Sent folder."""
        rows = self.db.rows(
            "SELECT id, email_id, raw, status, attempts, created_at, appended FROM mail_outbox "
            "WHERE status <> 'failed' AND appended = :no AND next_attempt_at <= :now "
            "ORDER BY id LIMIT :limit", {"now": self.db.time(now), "no": False, "limit": limit})
        return [OutboxRow(row[0], row[1], bytes(row[2]), row[3], row[4], self.db.read_time(row[5]), bool(row[6]))
                for row in rows]

    def outbox_sent(self, outbox_id: int, email_id: int | None, now: datetime, appended: bool) -> None:
        self.db.execute("UPDATE mail_outbox SET status = 'sent', sent_at = :now, attempts = attempts + 1, "
                        "last_error = NULL, appended = :appended WHERE id = :id",
                        {"now": self.db.time(now), "id": outbox_id, "appended": appended})
        if email_id is not None:
            self.set_status(email_id, "sent")

    def outbox_appended(self, outbox_id: int, error: str | None = None) -> None:
        """Copied to the Sent folder, or given up on with the reason in `last_error`."""
        self.db.execute("UPDATE mail_outbox SET appended = :yes, last_error = :error WHERE id = :id",
                        {"yes": True, "error": error, "id": outbox_id})

    def outbox_retry(self, outbox_id: int, error: str, next_at: datetime) -> None:
        self.db.execute("UPDATE mail_outbox SET attempts = attempts + 1, last_error = :error, next_attempt_at = :at "
                        "WHERE id = :id", {"error": error[:1000], "at": self.db.time(next_at), "id": outbox_id})

    def outbox_failed(self, outbox_id: int, email_id: int | None, error: str) -> None:
        self.db.execute("UPDATE mail_outbox SET status = 'failed', attempts = attempts + 1, last_error = :error "
                        "WHERE id = :id", {"error": error[:1000], "id": outbox_id})
        if email_id is not None:
            self.set_status(email_id, "failed")

    # --- filing again ----------------------------------------------------------------------------

    def refile(self, addresses: Iterable[str], own: OwnAddresses) -> int:
        """Link stored mail naming these addresses (or at their domains) to the files that have them now.

        Runs when a contact or organization gains an address or a domain: mail that waited in
        "unassigned", or went to other files only, reaches the new file. Returns the emails linked anew.
        """
        wanted, domains = lookup_keys({a.strip().lower() for a in addresses if "@" in a}, own)
        return self._refile_where(wanted, domains, own)

    def refile_domains(self, domains: Iterable[str], own: OwnAddresses) -> int:
        return self._refile_where(set(), {d.strip().lower() for d in domains if d} - own.domains, own)

    def _refile_where(self, addresses: set[str], domains: set[str], own: OwnAddresses) -> int:
        email_ids: set[int] = set()
        for column, values in (("address", sorted(addresses)), ("domain", sorted(domains))):
            for start in range(0, len(values), IN_LIST):
                params: dict[str, Any] = {}
                sql = expand(f"SELECT DISTINCT email_id FROM email_participants WHERE {column} IN :v",
                             "v", values[start:start + IN_LIST], params)
                email_ids.update(row[0] for row in self.db.rows(sql, params))
        ordered = sorted(email_ids)
        return sum(self._refile_emails(ordered[start:start + IN_LIST], own)
                   for start in range(0, len(ordered), IN_LIST))

    def _refile_emails(self, email_ids: list[int], own: OwnAddresses) -> int:
        params: dict[str, Any] = {}
        sql = expand("SELECT p.email_id, p.role, p.address, h.id, h.occurred_at FROM email_participants p "
                     "JOIN history_entries h ON h.email_id = p.email_id WHERE p.email_id IN :e", "e", email_ids, params)
        rows = self.db.rows(sql, params)
        participants: dict[int, list[tuple[str, str]]] = defaultdict(list)
        entries: dict[int, tuple[int, Any]] = {}
        for email_id, role, address, entry_id, at in rows:
            participants[email_id].append((role, address))
            entries[email_id] = (entry_id, at)
        by_address, by_domain = self._lookup({a for found in participants.values() for _, a in found}, own)
        linked = 0
        for email_id, found_participants in participants.items():
            found = targets(_filing_addresses(found_participants), own, by_address, by_domain)
            if found:
                entry_id, at = entries[email_id]
                self._link(entry_id, at, found)
                self.db.execute("UPDATE emails SET assigned = :yes WHERE id = :id", {"yes": True, "id": email_id})
                linked += 1
        return linked

    # --- warnings and erasure --------------------------------------------------------------------

    def warn(self, mailbox: str, folder: str | None, uid: int | None, kind: str, detail: str,
             email_id: int | None, now: datetime) -> None:
        self.db.execute("INSERT INTO mail_warnings (mailbox, folder, uid, kind, detail, email_id, created_at) "
                        "VALUES (:m, :f, :u, :k, :d, :e, :now)",
                        {"m": mailbox, "f": folder, "u": uid, "k": kind, "d": detail, "e": email_id,
                         "now": self.db.time(now)})

    def erase(self, email_id: int, now: datetime) -> bool:
        """Delete a message and everything filed from it; remember its hashes so it never comes back."""
        rows = self.db.rows("SELECT message_key, raw_sha256 FROM emails WHERE id = :id", {"id": email_id})
        if not rows:
            return False
        key, raw_sha256 = rows[0]
        hashes = {sha256(key.encode("utf-8", "surrogatepass"))} | ({raw_sha256} if raw_sha256 else set())
        self.db.many("INSERT INTO mail_tombstones (sha256, erased_at) VALUES (:h, :now) ON CONFLICT DO NOTHING",
                     [{"h": h, "now": self.db.time(now)} for h in sorted(hashes)])
        attachments = [row[0] for row in self.db.rows(
            "SELECT blob_sha256 FROM email_attachments WHERE email_id = :id", {"id": email_id})]
        self.db.execute("DELETE FROM history_entries WHERE email_id = :id", {"id": email_id})
        self.db.execute("DELETE FROM mail_outbox WHERE email_id = :id", {"id": email_id})
        self.db.execute("DELETE FROM emails WHERE id = :id", {"id": email_id})
        self._drop_unused_blobs([*attachments, *([raw_sha256] if raw_sha256 else [])])
        return True

    def replace_raw(self, email_id: int, raw: bytes, now: datetime) -> None:
        """Keep `raw` as the message's source instead of what it was (an erasure cut a person out of it)."""
        rows = self.db.rows("SELECT raw_sha256 FROM emails WHERE id = :id", {"id": email_id})
        digest = sha256(raw)
        self._blobs([(digest, raw)], now)
        self.db.execute("UPDATE emails SET raw_sha256 = :h, size = :size WHERE id = :id",
                        {"h": digest, "size": len(raw), "id": email_id})
        self._drop_unused_blobs([row[0] for row in rows if row[0] and row[0] != digest])

    def _drop_unused_blobs(self, hashes: list[str]) -> None:
        for digest in set(hashes):
            self.db.execute(
                "DELETE FROM blobs WHERE sha256 = :h AND NOT EXISTS (SELECT 1 FROM emails WHERE raw_sha256 = :h) "
                "AND NOT EXISTS (SELECT 1 FROM email_attachments WHERE blob_sha256 = :h)", {"h": digest})


def thread_key(parsed: ParsedMail, own_key: str, known_threads: dict[str, str]) -> str:
    """The conversation a message belongs to: the first message of its References, else its parent's."""
    if parsed.references:
        return parsed.references[0]
    if parsed.in_reply_to:
        return known_threads.get(parsed.in_reply_to, parsed.in_reply_to)
    return own_key
