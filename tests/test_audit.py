"""The audit trail: what the route table makes every /api request write, what it never holds, that
the database refuses to rewrite it, and how it is read back (API and CLI)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from commhub import audit
from commhub.commands.common import Database, open_database
from commhub.settings import DatabaseSettings, Settings
from commhub.store import agents
from commhub.store.models import AuditEvent
from support.cli import config, run_cli  # noqa: F401 - `config` is a fixture

on_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NUMBER = "030 1234567"
EVENT_FIELDS = {"id", "at", "agent_id", "actor", "action", "subject", "via", "client", "route", "status", "details"}


async def events(db: Database) -> list[AuditEvent]:
    async with db.sessions() as session:
        return list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


async def raw_rows(db: Database) -> list[tuple[Any, ...]]:
    """Every column of every row as the database holds it (no ORM types in between)."""
    async with db.sessions() as session:
        return [tuple(row) for row in await session.execute(text("SELECT * FROM audit_events"))]


async def me(client: TestClient, headers: dict[str, str]) -> int:
    return (await (await client.get("/api/me", headers=headers)).json())["id"]


async def create_contact(client: TestClient, headers: dict[str, str], **fields: Any) -> int:
    body = {"first_name": "Jürgen", "last_name": "Müller", "phones": [{"number": NUMBER}], **fields}
    response = await client.post("/api/contacts", json=body, headers=headers)
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


# --- what each request writes -------------------------------------------------------------------------


@on_sqlite
async def test_reading_a_contact_writes_a_read_event(client: TestClient, db: Database,
                                                     agent_headers: dict[str, str]) -> None:
    agent_id = await me(client, agent_headers)
    contact_id = await create_contact(client, agent_headers)
    before = len(await events(db))
    response = await client.get(f"/api/contacts/{contact_id}", headers=agent_headers)
    assert response.status == 200
    added = (await events(db))[before:]
    assert len(added) == 1
    [event] = added
    assert (event.action, event.subject_kind, event.subject_id) == ("read", "contact", contact_id)
    assert (event.agent_id, event.actor, event.via) == (agent_id, f"agent:{agent_id}", "api")
    assert (event.client, event.route, event.status) == ("127.0.0.1", "GET /api/contacts/{id}", 200)
    assert event.details == {}
    assert abs((datetime.now(UTC) - event.at).total_seconds()) < 60


@on_sqlite
async def test_a_create_records_the_new_files_id(client: TestClient, db: Database,
                                                 agent_headers: dict[str, str]) -> None:
    first = await create_contact(client, agent_headers)
    second = await create_contact(client, agent_headers, first_name="Sabine", last_name="Weiß", phones=[])
    created = [e for e in await events(db) if e.action == "create"]
    assert [(e.subject_kind, e.subject_id, e.status, e.route) for e in created] == [
        ("contact", first, 201, "POST /api/contacts"), ("contact", second, 201, "POST /api/contacts")]
    assert first != second


@on_sqlite
async def test_a_search_names_its_fields_and_never_holds_the_searched_values(
        client: TestClient, db: Database, agent_headers: dict[str, str]) -> None:
    await create_contact(client, agent_headers, emails=["j.mueller@mh.example"])
    before = len(await events(db))
    found = await client.get("/api/contacts", params={"phone": NUMBER}, headers=agent_headers)
    assert found.status == 200 and (await found.json())["matches"], "the search itself works"
    by_name = await client.get("/api/contacts", params={"q": "Müller", "limit": "5"}, headers=agent_headers)
    assert by_name.status == 200
    by_mail = await client.get("/api/contacts", params={"email": "j.mueller@mh.example"}, headers=agent_headers)
    assert by_mail.status == 200
    added = (await events(db))[before:]
    assert [(e.action, e.subject_kind, e.subject_id, e.route) for e in added] == [
        ("search", "contact", None, "GET /api/contacts")] * 3
    assert [e.details for e in added] == [{"by": ["phone"]}, {"by": ["limit", "q"]}, {"by": ["email"]}]
    # Not in any column of any row, in any spelling.
    for row in await raw_rows(db):
        for value in row:
            cell = str(value)
            for secret in ("1234567", "+4930", "Müller", "Jürgen", "mueller", "mh.example"):
                assert secret not in cell, (secret, row)


@on_sqlite
async def test_the_console_is_recorded_as_such(client: TestClient, db: Database,
                                               agent_headers: dict[str, str]) -> None:
    contact_id = await create_contact(client, agent_headers)
    signed_in = await client.post("/api/session", json={"token": agent_headers["Authorization"][7:]})
    assert signed_in.status == 200
    assert (await client.get(f"/api/contacts/{contact_id}")).status == 200  # the cookie, no header
    event = (await events(db))[-1]
    assert (event.action, event.subject_id, event.via) == ("read", contact_id, "console")


@on_sqlite
async def test_an_agent_on_an_admin_route_gets_403_and_a_denied_event(
        client: TestClient, db: Database, agent_headers: dict[str, str]) -> None:
    agent_id = await me(client, agent_headers)
    contact_id = await create_contact(client, agent_headers)
    before = len(await events(db))
    refused = await client.delete(f"/api/contacts/{contact_id}", headers=agent_headers)
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "forbidden"
    listing = await client.get("/api/audit", headers=agent_headers)
    assert listing.status == 403
    added = (await events(db))[before:]
    assert [(e.action, e.agent_id, e.subject_kind, e.subject_id, e.status, e.route) for e in added] == [
        ("denied", agent_id, "contact", contact_id, 403, "DELETE /api/contacts/{id}"),
        ("denied", agent_id, "audit", None, 403, "GET /api/audit")]
    assert all(e.client == "127.0.0.1" and e.via == "api" for e in added)
    assert (await client.get(f"/api/contacts/{contact_id}", headers=agent_headers)).status == 200  # still there


@on_sqlite
async def test_failed_and_unauthenticated_requests_record_nothing(
        client: TestClient, db: Database, agent_headers: dict[str, str]) -> None:
    contact_id = await create_contact(client, agent_headers)
    before = await events(db)
    assert (await client.get("/api/contacts/999999", headers=agent_headers)).status == 404
    assert (await client.get("/api/contacts", params={"q": "x", "phone": "1"}, headers=agent_headers)).status == 400
    assert (await client.patch(f"/api/contacts/{contact_id}", json={"nonsense": 1},
                               headers=agent_headers)).status in (400, 422)
    assert (await client.get(f"/api/contacts/{contact_id}")).status == 401
    assert (await client.get(f"/api/contacts/{contact_id}",
                             headers={"Authorization": "Bearer chub_wrong"})).status == 401
    assert len(await events(db)) == len(before)


@on_sqlite
async def test_a_change_and_a_note_are_changes_of_that_contact(client: TestClient, db: Database,
                                                               agent_headers: dict[str, str]) -> None:
    contact_id = await create_contact(client, agent_headers)
    assert (await client.patch(f"/api/contacts/{contact_id}", json={"city": "Berlin"},
                               headers=agent_headers)).status == 200
    assert (await client.post(f"/api/contacts/{contact_id}/notes", json={"text": "Rückruf morgen"},
                              headers=agent_headers)).status == 201
    last_two = (await events(db))[-2:]
    assert [(e.action, e.subject_kind, e.subject_id) for e in last_two] == [
        ("change", "contact", contact_id), ("change", "contact", contact_id)]
    assert [e.route for e in last_two] == ["PATCH /api/contacts/{id}", "POST /api/contacts/{id}/notes"]
    for row in await raw_rows(db):
        assert not any("Berlin" in str(value) or "Rückruf" in str(value) for value in row)


@on_sqlite
async def test_undeclared_query_parameter_names_never_reach_the_trail(
        client: TestClient, db: Database, agent_headers: dict[str, str]) -> None:
    # A broken client or script that puts the number where the name belongs: "?0301234567" or "?phone030…=".
    response = await client.get("/api/contacts?0301234567&Mueller%20Juergen=1", headers=agent_headers)
    assert response.status == 200
    event = (await events(db))[-1]
    assert event.action == "search"
    for row in await raw_rows(db):
        assert not any("1234567" in str(value) or "Mueller" in str(value) for value in row), row


# --- append-only, on both backends ---------------------------------------------------------------


async def test_the_database_refuses_to_update_or_delete_audit_events(db: Database) -> None:
    async with db.sessions() as session, session.begin():
        audit.record(session, audit.Actor(7, "agent:7", "api", "127.0.0.1"), "read", "contact", 17,
                     route="GET /api/contacts/{id}", status=200)
    [original] = await raw_rows(db)
    statements = ["UPDATE audit_events SET action = 'change'",
                  "UPDATE audit_events SET client = NULL WHERE id = (SELECT max(id) FROM audit_events)",
                  "DELETE FROM audit_events",
                  "DELETE FROM audit_events WHERE subject_id = 17"]
    if db.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_events")
    for statement in statements:
        async with db.sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text(statement))
            await session.rollback()
    assert await raw_rows(db) == [original]
    # Appending still works.
    async with db.sessions() as session, session.begin():
        audit.record(session, audit.DAEMON, "retention", details={"count": 3})
    assert len(await raw_rows(db)) == 2


# --- reading the trail: GET /api/audit -------------------------------------------------------------------


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


async def seed(db: Database) -> dict[str, int]:
    """Five events of two (made-up) agents and the CLI, at known times; their ids by name."""
    anna, ben = audit.Actor(101, "agent:101", "api", "192.0.2.1"), audit.Actor(102, "agent:102", "console", "192.0.2.2")
    rows = {
        "e1": (anna, "read", "contact", 5, "2026-01-10T09:00:00"),
        "e2": (ben, "search", "contact", None, "2026-02-10T09:00:00"),
        "e3": (anna, "change", "contact", 5, "2026-03-10T09:00:00"),
        "e4": (ben, "read", "email", 9, "2026-03-15T09:00:00"),
        "e5": (audit.Actor.cli(), "export", "contact", 6, "2026-04-01T00:00:00"),
    }
    ids = {}
    async with db.sessions() as session, session.begin():
        for name, (actor, action, kind, subject_id, when) in rows.items():
            event = audit.record(session, actor, action, kind, subject_id, at=at(when),
                                 details={"by": ["phone"]} if action == "search" else None)
            await session.flush()
            ids[name] = event.id
    return ids


async def trail(client: TestClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    response = await client.get("/api/audit", params=params, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


def names(page: dict[str, Any], ids: dict[str, int]) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id.get(item["id"], f"other:{item['subject']}") for item in page["items"]]


@on_sqlite
async def test_the_api_filters_the_trail(client: TestClient, db: Database, admin_headers: dict[str, str]) -> None:
    ids = await seed(db)
    assert names(await trail(client, admin_headers, subject="contact:5"), ids) == ["e3", "e1"]
    assert names(await trail(client, admin_headers, subject="contact"), ids) == ["e5", "e3", "e2", "e1"]
    assert names(await trail(client, admin_headers, subject="contact", action="read"), ids) == ["e1"]
    assert names(await trail(client, admin_headers, action="export"), ids) == ["e5"]
    assert names(await trail(client, admin_headers, agent_id="102"), ids) == ["e4", "e2"]
    assert names(await trail(client, admin_headers, since="2026-03-01", until="2026-04-01"), ids) == ["e4", "e3"]
    assert names(await trail(client, admin_headers, since="2026-03-15T09:00", until="2026-04-02"), ids) == [
        "e5", "e4"]
    page = await trail(client, admin_headers, subject="email:9")
    [item] = page["items"]
    assert set(item) == EVENT_FIELDS
    assert item == {"id": ids["e4"], "at": "2026-03-15T09:00:00+00:00", "agent_id": 102, "actor": "agent:102",
                    "action": "read", "subject": "email:9", "via": "console", "client": "192.0.2.2",
                    "route": None, "status": None, "details": {}}
    assert page["next"] is None


@on_sqlite
async def test_the_api_pages_back_through_the_trail(client: TestClient, db: Database,
                                                    admin_headers: dict[str, str]) -> None:
    ids = await seed(db)
    first = await trail(client, admin_headers, subject="contact", limit="3")
    assert names(first, ids) == ["e5", "e3", "e2"] and first["next"] == str(ids["e2"])
    second = await trail(client, admin_headers, subject="contact", limit="3", before=first["next"])
    assert names(second, ids) == ["e1"] and second["next"] is None
    exact = await trail(client, admin_headers, subject="contact", limit="4")
    assert len(exact["items"]) == 4 and exact["next"] is None  # no empty page promised


@on_sqlite
async def test_reading_the_trail_is_itself_recorded_and_bad_filters_are_400(
        client: TestClient, db: Database, admin_headers: dict[str, str]) -> None:
    await seed(db)
    admin_id = await me(client, admin_headers)
    await trail(client, admin_headers, subject="contact:5", action="read")
    newest = await trail(client, admin_headers, limit="1")
    [read] = newest["items"]
    assert (read["action"], read["subject"], read["agent_id"]) == ("read", "audit", admin_id)
    assert read["details"] == {"by": ["action", "subject"]} and read["route"] == "GET /api/audit"
    before = len(await events(db))
    for params in ({"action": "peek"}, {"subject": "contact:x"}, {"since": "yesterday"}, {"limit": "0"},
                   {"limit": "1001"}, {"agent_id": "bob"}, {"before": "-1"}):
        response = await client.get("/api/audit", params=params, headers=admin_headers)
        assert response.status == 400, params
        assert (await response.json())["error"]["code"] == "bad_request"
    assert len(await events(db)) == before


# --- audit.record and event_json ---------------------------------------------------------------------


class Collector:
    def __init__(self) -> None:
        self.added: list[object] = []

    def add(self, item: object) -> None:
        self.added.append(item)


def test_record_refuses_unknown_detail_keys_and_actions() -> None:
    session = Collector()
    actor = audit.Actor(1, "agent:1", "api", "127.0.0.1")
    with pytest.raises(ValueError, match="may not carry.*'phone'"):
        audit.record(session, actor, "search", "contact", details={"by": ["phone"], "phone": "030 1234567"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown audit action 'peek'"):
        audit.record(session, actor, "peek", "contact", 1)  # type: ignore[arg-type]
    assert session.added == []
    event = audit.record(session, actor, "erase", "contact", 4, details={"calls_deleted": 2})  # type: ignore[arg-type]
    assert session.added == [event]
    assert (event.agent_id, event.actor, event.via, event.client, event.details) == (
        1, "agent:1", "api", "127.0.0.1", {"calls_deleted": 2})
    with pytest.raises(Exception, match="unknown action"):
        audit.AuditQuery(action="peek")


def test_event_json_names_the_subject() -> None:
    def subject(kind: str | None, subject_id: int | None) -> str | None:
        event = AuditEvent(id=1, at=at("2026-01-01T00:00:00"), agent_id=None, actor="daemon", action="retention",
                           subject_kind=kind, subject_id=subject_id, via="daemon", client=None, route=None,
                           status=None, details={})
        return audit.event_json(event)["subject"]
    assert [subject("contact", 17), subject("audit", None), subject(None, None)] == ["contact:17", "audit", None]


# --- commhub audit (in process) ---------------------------------------------------------------------


def seed_cli(config: Path) -> int:
    """Events of agent 'anna' about contacts 7 and 8; anna's id."""
    async def go() -> int:
        settings = Settings(database=DatabaseSettings(url=f"sqlite+aiosqlite:///{config.parent / 'cli.db'}"))
        async with open_database(settings) as db, db.sessions() as session, session.begin():
            anna = await agents.create_agent(session, "anna")
            actor = audit.Actor(anna.id, f"agent:{anna.id}", "api", "127.0.0.1")
            audit.record(session, actor, "read", "contact", 7, route="GET /api/contacts/{id}", status=200,
                         at=at("2026-01-10T09:00:00"))
            audit.record(session, actor, "search", "contact", route="GET /api/contacts", status=200,
                         details={"by": ["phone"]}, at=at("2026-01-11T09:00:00"))
            audit.record(session, actor, "change", "contact", 7, route="PATCH /api/contacts/{id}", status=200,
                         at=at("2026-02-01T09:00:00"))
            audit.record(session, audit.Actor.cli(), "export", "contact", 8, at=at("2026-03-01T09:00:00"))
            return anna.id
    return asyncio.run(go())


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code, out, err = run_cli(config, capsys, "audit", *args)
    return code, out.splitlines(), err


def test_cli_prints_a_contacts_events_newest_first(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    anna = seed_cli(config)
    code, lines, _ = run(config, capsys, "--contact", "7")
    assert code == 0 and len(lines) == 2
    assert lines[0].startswith("2026-02-01T09:00:00") and lines[1].startswith("2026-01-10T09:00:00")
    assert lines[0].split()[1:6] == [f"agent:{anna}", "change", "contact:7", "api", "127.0.0.1"]
    assert lines[0].endswith("PATCH /api/contacts/{id}")
    assert lines[1].split()[2] == "read" and "GET /api/contacts/{id}" in lines[1]

    code, lines, _ = run(config, capsys, "--agent", "anna", "--action", "search")
    assert code == 0 and len(lines) == 1
    assert "contact " in lines[0] and lines[0].endswith("by=['phone']")

    assert len(run(config, capsys, "--subject", "contact")[1]) == 4
    assert [line.split()[2] for line in run(config, capsys, "--subject", "contact:8")[1]] == ["export"]
    assert [line[:10] for line in run(config, capsys, "--since", "2026-01-11", "--until", "2026-02-02")[1]] == [
        "2026-02-01", "2026-01-11"]
    assert len(run(config, capsys, "--limit", "1")[1]) == 1
    assert run(config, capsys, "--contact", "99") == (0, ["no audit events match"], "")


def test_cli_json_prints_one_object_per_line(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    anna = seed_cli(config)
    code, lines, _ = run(config, capsys, "--contact", "7", "--json")
    assert code == 0
    found = [json.loads(line) for line in lines]
    assert [(e["action"], e["subject"], e["agent_id"], e["actor"]) for e in found] == [
        ("change", "contact:7", anna, f"agent:{anna}"), ("read", "contact:7", anna, f"agent:{anna}")]
    assert all(set(e) == EVENT_FIELDS for e in found)
    assert found[1]["at"] == "2026-01-10T09:00:00+00:00" and found[1]["status"] == 200
    # No match: nothing at all, so a pipe into jq gets no stray text.
    assert run(config, capsys, "--contact", "99", "--json") == (0, [], "")


def test_cli_refuses_bad_filters(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed_cli(config)
    for args, message in ((["--agent", "nobody"], "no agent named 'nobody'"),
                          (["--since", "last week"], "--since: 'last week' is not a date"),
                          (["--subject", "contact:seven"], "is not KIND or KIND:ID"),
                          (["--action", "peek"], "unknown action 'peek'"),
                          # SQLite took LIMIT -1 for "everything", PostgreSQL failed with a traceback.
                          (["--limit", "0"], "--limit: at least 1"), (["--limit", "-1"], "--limit: at least 1")):
        code, lines, err = run(config, capsys, *args)
        assert code == 2 and message in err and lines == [], args
