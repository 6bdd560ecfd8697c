"""The call path's storage, in hand-written SQL over `SqlDb` (see sql_db.py for why).

Rows travel as plain dataclasses with the same attribute names as the ORM models, so `call_json`,
`task_json` and the state machine's `facts_of` read either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from commhub.store.locks import AGENT_SEQ_LOCKS, CALLBACK_LOCKS
from commhub.store.sql_db import SqlDb, expand, read_json, write_json

CALL_COLUMNS = ("id", "source", "provider_call_id", "direction", "state", "caller_raw", "caller_e164",
                "caller_name", "withheld", "callee_raw", "customer_e164", "targets", "agent_ids", "answered_by",
                "answered_by_agent_id", "started_at", "answered_at", "ended_at", "duration", "vendor_outcome",
                "matches", "related_call_id", "task_id", "created_at", "updated_at")
_CALL_JSON = {"targets", "agent_ids", "matches"}
_CALL_TIMES = {"started_at", "answered_at", "ended_at", "created_at", "updated_at"}
TASK_COLUMNS = ("id", "kind", "title", "status", "due_at", "assignee_agent_id", "contact_id", "organization_id",
                "phone_e164", "data", "created_at", "done_at")


@dataclass
class CallRow:
    source: str
    provider_call_id: str
    direction: str
    state: str
    started_at: datetime
    caller_raw: str | None = None
    caller_e164: str | None = None
    caller_name: str | None = None
    withheld: bool = False
    callee_raw: str | None = None
    customer_e164: str | None = None
    targets: list[str] = field(default_factory=list)
    agent_ids: list[int] = field(default_factory=list)
    answered_by: str | None = None
    answered_by_agent_id: int | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration: int | None = None
    vendor_outcome: str | None = None
    matches: list[dict[str, Any]] = field(default_factory=list)
    related_call_id: str | None = None
    task_id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    id: int = 0


@dataclass
class TaskRow:
    kind: str
    title: str
    status: str = "open"
    due_at: datetime | None = None
    assignee_agent_id: int | None = None
    contact_id: int | None = None
    organization_id: int | None = None
    phone_e164: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    done_at: datetime | None = None
    id: int = 0


class CallSql:
    def __init__(self, db: SqlDb) -> None:
        self.db = db

    # --- calls -----------------------------------------------------------------------------------

    def _call(self, row: Any) -> CallRow:
        values = dict(zip(CALL_COLUMNS, row, strict=True))
        for name in _CALL_JSON:
            values[name] = read_json(values[name])
        for name in _CALL_TIMES:
            values[name] = self.db.read_time(values[name])
        values["withheld"] = bool(values["withheld"])
        return CallRow(**values)

    def find_call(self, source: str, provider_call_id: str) -> CallRow | None:
        """The call, locked until the transaction ends where several nodes write: two events of one
        call reaching two nodes at once are then applied one after the other, not one over the other."""
        lock = " FOR UPDATE" if self.db.row_locks else ""
        rows = self.db.rows(f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE source = :source "
                            f"AND provider_call_id = :pid{lock}", {"source": source, "pid": provider_call_id})
        return self._call(rows[0]) if rows else None

    def list_calls(self, *, state: str | None, direction: str | None, before: int | None,
                   limit: int) -> list[CallRow]:
        """Newest first; `before` pages by id."""
        where, params = ["1 = 1"], {"limit": limit}
        for name, value, clause in (("state", state, "state = :state"), ("direction", direction,
                                    "direction = :direction"), ("before", before, "id < :before")):
            if value:
                where.append(clause)
                params[name] = value
        rows = self.db.rows(f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE {' AND '.join(where)} "
                            "ORDER BY id DESC LIMIT :limit", params)
        return [self._call(row) for row in rows]

    def get_call(self, call_id: int) -> CallRow | None:
        rows = self.db.rows(f"SELECT {', '.join(CALL_COLUMNS)} FROM calls WHERE id = :id", {"id": call_id})
        return self._call(rows[0]) if rows else None

    def _call_params(self, call: CallRow) -> dict[str, Any]:
        params = {name: getattr(call, name) for name in CALL_COLUMNS if name != "id"}
        for name in _CALL_JSON:
            params[name] = write_json(params[name])
        for name in _CALL_TIMES:
            params[name] = self.db.time(params[name])
        return params

    def insert_call(self, call: CallRow, now: datetime) -> int:
        call.created_at = call.updated_at = now
        names = [name for name in CALL_COLUMNS if name != "id"]
        call.id = self.db.rows(f"INSERT INTO calls ({', '.join(names)}) VALUES "
                               f"({', '.join(':' + n for n in names)}) RETURNING id", self._call_params(call))[0][0]
        return call.id

    def update_call(self, call: CallRow, now: datetime) -> None:
        call.updated_at = now
        names = [name for name in CALL_COLUMNS if name not in ("id", "created_at")]
        self.db.execute(f"UPDATE calls SET {', '.join(f'{n} = :{n}' for n in names)} WHERE id = :id",
                        {**self._call_params(call), "id": call.id})

    def seen_event(self, call_id: int, key: str) -> bool:
        return bool(self.db.rows("SELECT 1 FROM call_events WHERE call_id = :call AND dedupe_key = :key",
                                 {"call": call_id, "key": key}))

    def insert_event(self, call_id: int, phase: str, key: str, occurred_at: datetime, now: datetime,
                     data: dict[str, Any]) -> None:
        self.db.execute("INSERT INTO call_events (call_id, phase, dedupe_key, occurred_at, received_at, data) "
                        "VALUES (:call, :phase, :key, :at, :now, :data)",
                        {"call": call_id, "phase": phase, "key": key, "at": self.db.time(occurred_at),
                         "now": self.db.time(now), "data": write_json(data)})

    # --- agents ----------------------------------------------------------------------------------

    def agents_for_keys(self, keys: list[str]) -> list[int]:
        if not keys:
            return []
        params: dict[str, Any] = {}
        sql = expand("SELECT DISTINCT e.agent_id FROM agent_extensions e JOIN agents a ON a.id = e.agent_id "
                     "WHERE a.active AND e.extension IN :keys", "keys", keys, params)
        return sorted(row[0] for row in self.db.rows(sql, params))

    def active_agents(self, names: list[str] | None) -> list[int]:
        params: dict[str, Any] = {}
        sql = "SELECT id FROM agents WHERE active"
        if names is not None:
            sql = expand(sql + " AND name IN :names", "names", names, params)
        return sorted(row[0] for row in self.db.rows(sql, params))

    def agent_names(self, ids: Iterable[int | None]) -> dict[int, str]:
        wanted = sorted({agent_id for agent_id in ids if agent_id is not None})
        if not wanted:
            return {}
        params: dict[str, Any] = {}
        sql = expand("SELECT id, name FROM agents WHERE id IN :ids", "ids", wanted, params)
        return {agent_id: name for agent_id, name in self.db.rows(sql, params)}

    # --- what the pop shows ----------------------------------------------------------------------

    def open_tasks(self, contacts: list[int], organizations: list[int]) -> Sequence[Any]:
        """(id, kind, title, due_at, contact_id, organization_id) of open tasks, soonest first."""
        params: dict[str, Any] = {}
        owners = []
        if contacts:
            owners.append(expand("contact_id IN :contacts", "contacts", contacts, params))
        if organizations:
            owners.append(expand("organization_id IN :orgs", "orgs", organizations, params))
        if not owners:
            return []
        rows = self.db.rows("SELECT id, kind, title, due_at, contact_id, organization_id FROM tasks "
                            f"WHERE status = 'open' AND ({' OR '.join(owners)}) "
                            "ORDER BY COALESCE(due_at, created_at), id", params)
        return [(r[0], r[1], r[2], self.db.read_time(r[3]), r[4], r[5]) for r in rows]

    def recent_entries(self, kind: str, file_id: int, limit: int) -> list[dict[str, Any]]:
        column = "contact_id" if kind == "contact" else "organization_id"
        rows = self.db.rows("SELECT h.id, h.kind, h.occurred_at, h.title FROM history_links l "
                            "JOIN history_entries h ON h.id = l.entry_id "
                            f"WHERE l.{column} = :owner ORDER BY l.occurred_at DESC, l.entry_id DESC LIMIT :limit",
                            {"owner": file_id, "limit": limit})
        return [{"id": r[0], "kind": r[1], "occurred_at": self.db.read_time(r[2]).isoformat(),  # type: ignore[union-attr]
                 "title": r[3]} for r in rows]

    # --- history ---------------------------------------------------------------------------------

    def call_entry_id(self, call_id: int) -> int | None:
        rows = self.db.rows("SELECT id FROM history_entries WHERE call_id = :call AND kind = 'call'",
                            {"call": call_id})
        return rows[0][0] if rows else None

    def add_entry(self, *, kind: str, title: str, body: str, data: dict[str, Any], agent_id: int | None,
                  contact_ids: list[int], organization_ids: list[int], occurred_at: datetime, now: datetime,
                  call_id: int | None, client_ref: str | None = None) -> int:
        at = self.db.time(occurred_at)
        entry_id = self.db.rows(
            "INSERT INTO history_entries (kind, occurred_at, title, body, data, agent_id, call_id, client_ref, "
            "created_at) VALUES (:kind, :at, :title, :body, :data, :agent, :call, :ref, :now) RETURNING id",
            {"kind": kind, "at": at, "title": title, "body": body, "data": write_json(data), "agent": agent_id,
             "call": call_id, "ref": client_ref, "now": self.db.time(now)})[0][0]
        links = ([{"entry": entry_id, "contact": cid, "org": None, "at": at} for cid in dict.fromkeys(contact_ids)]
                 + [{"entry": entry_id, "contact": None, "org": oid, "at": at}
                    for oid in dict.fromkeys(organization_ids)])
        self.db.many("INSERT INTO history_links (entry_id, contact_id, organization_id, occurred_at) "
                     "VALUES (:entry, :contact, :org, :at)", links)
        return entry_id

    def entry_by_ref(self, agent_id: int, client_ref: str) -> dict[str, Any] | None:
        """The entry this agent already saved under this ref, as the timeline shows it, or None."""
        rows = self.db.rows("SELECT id, kind, occurred_at, title, body, data, call_id FROM history_entries "
                            "WHERE agent_id = :agent AND client_ref = :ref", {"agent": agent_id, "ref": client_ref})
        if not rows:
            return None
        entry_id, kind, at, title, body, data, call_id = rows[0]
        links = self.db.rows("SELECT contact_id, organization_id FROM history_links WHERE entry_id = :entry "
                             "ORDER BY id", {"entry": entry_id})
        return {"id": entry_id, "kind": kind, "occurred_at": self.db.read_time(at).isoformat(),  # type: ignore[union-attr]
                "title": title, "body": body, "data": read_json(data), "call_id": call_id,
                "agent": {"id": agent_id, "name": self.agent_names([agent_id]).get(agent_id)},
                "contact_ids": [c for c, _ in links if c is not None],
                "organization_ids": [o for _, o in links if o is not None]}

    def update_entry(self, entry_id: int, title: str, data: dict[str, Any]) -> None:
        self.db.execute("UPDATE history_entries SET title = :title, data = :data WHERE id = :id",
                        {"title": title, "data": write_json(data), "id": entry_id})

    # --- tasks -----------------------------------------------------------------------------------

    def _task(self, row: Any) -> TaskRow:
        values = dict(zip(TASK_COLUMNS, row, strict=True))
        values["data"] = read_json(values["data"])
        for name in ("due_at", "created_at", "done_at"):
            values[name] = self.db.read_time(values[name])
        return TaskRow(**values)

    def get_task(self, task_id: int) -> TaskRow | None:
        rows = self.db.rows(f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks WHERE id = :id", {"id": task_id})
        return self._task(rows[0]) if rows else None

    def open_callback(self, phone: str) -> TaskRow | None:
        """The open callback task for a number. Where several nodes write, the number stays locked until
        the transaction ends: two missed calls from it on two nodes then share one task, not make two."""
        if self.db.row_locks:
            self.db.rows("SELECT pg_advisory_xact_lock(:space, hashtext(:phone))",
                         {"space": CALLBACK_LOCKS, "phone": phone})
        rows = self.db.rows(f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks WHERE kind = 'callback' "
                            "AND status = 'open' AND phone_e164 = :phone ORDER BY id LIMIT 1", {"phone": phone})
        return self._task(rows[0]) if rows else None

    def _task_params(self, task: TaskRow) -> dict[str, Any]:
        params = {name: getattr(task, name) for name in TASK_COLUMNS if name != "id"}
        params["data"] = write_json(task.data)
        for name in ("due_at", "created_at", "done_at"):
            params[name] = self.db.time(params[name])
        return params

    def insert_task(self, task: TaskRow, now: datetime) -> int:
        task.created_at = now
        names = [name for name in TASK_COLUMNS if name != "id"]
        task.id = self.db.rows(f"INSERT INTO tasks ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)}) "
                               "RETURNING id", self._task_params(task))[0][0]
        return task.id

    def update_task(self, task: TaskRow) -> None:
        names = [name for name in TASK_COLUMNS if name not in ("id", "created_at")]
        self.db.execute(f"UPDATE tasks SET {', '.join(f'{n} = :{n}' for n in names)} WHERE id = :id",
                        {**self._task_params(task), "id": task.id})

    # --- the agents' backlog ---------------------------------------------------------------------

    def last_seq(self, agent_id: int) -> int:
        rows = self.db.rows("SELECT MAX(seq) FROM agent_messages WHERE agent_id = :agent", {"agent": agent_id})
        return rows[0][0] or 0

    def lock_agent_seqs(self, agent_ids: list[int]) -> None:
        """PostgreSQL: hold each agent's sequence until the transaction ends (advisory transaction
        locks, taken in id order so two transactions never wait for each other in a circle)."""
        self.db.rows("SELECT count(pg_advisory_xact_lock(:space, agent)) FROM "
                     "(SELECT unnest(CAST(:agents AS integer[])) AS agent ORDER BY 1) AS ordered",
                     {"space": AGENT_SEQ_LOCKS, "agents": sorted(agent_ids)})

    def last_seqs(self, agent_ids: list[int]) -> dict[int, int]:
        params: dict[str, Any] = {}
        rows = self.db.rows(expand("SELECT agent_id, MAX(seq) FROM agent_messages WHERE agent_id IN :agents "
                                   "GROUP BY agent_id", "agents", agent_ids, params), params)
        found = {agent_id: seq for agent_id, seq in rows}
        return {agent_id: found.get(agent_id, 0) for agent_id in agent_ids}

    def notify(self, channel: str, payload: str) -> None:
        """PostgreSQL: delivered to every listening node when (and only if) the transaction commits."""
        self.db.rows("SELECT pg_notify(:channel, :payload)", {"channel": channel, "payload": payload})

    def messages_at(self, keys: list[tuple[int, int]]) -> list[tuple[int, int, str, Any, Any]]:
        """Stored messages by (agent, seq): agent_id, seq, type, payload, created_at."""
        if not keys:
            return []
        where = " OR ".join(f"(agent_id = :a{i} AND seq = :s{i})" for i in range(len(keys)))
        params = {**{f"a{i}": a for i, (a, _) in enumerate(keys)}, **{f"s{i}": s for i, (_, s) in enumerate(keys)}}
        rows = self.db.rows(f"SELECT agent_id, seq, type, payload, created_at FROM agent_messages WHERE {where} "
                            "ORDER BY agent_id, seq", params)
        return [(a, s, t, read_json(p), self.db.read_time(c)) for a, s, t, p, c in rows]

    def insert_messages(self, rows: list[dict[str, Any]]) -> None:
        self.db.many("INSERT INTO agent_messages (agent_id, seq, type, payload, created_at) "
                     "VALUES (:agent_id, :seq, :type, :payload, :created_at)",
                     [{**row, "payload": write_json(row["payload"]), "created_at": self.db.time(row["created_at"])}
                      for row in rows])
