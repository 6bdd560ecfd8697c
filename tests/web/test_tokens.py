"""Agent tokens listed (never the secret) and revoked: through the API, the CLI and the store."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from commhub import cli
from commhub.commands.common import Database, open_database
from commhub.settings import DatabaseSettings, Settings
from commhub.store import agents
from commhub.store.models import AgentToken, AuditEvent, utcnow
from support.cli import config, run_cli  # noqa: F401 - `config` is a fixture

on_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TOKEN_FIELDS = {"id", "label", "state", "created_at", "expires_at", "last_used_at", "revoked_at"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def issue(db: Database, name: str, *, label: str = "", valid_days: int | None = None) -> tuple[int, str]:
    """A token for `name` (created as an agent when new): its id and its secret."""
    async with db.sessions() as session, session.begin():
        agent = await agents.find_agent(session, name) or await agents.create_agent(session, name)
        token = await agents.issue_token(session, agent, label=label, valid_days=valid_days)
        token_id = await session.scalar(select(AgentToken.id).where(
            AgentToken.token_hash == agents.hash_token(token)))
    assert token_id is not None
    return token_id, token


async def set_token(db: Database, token_id: int, **values: object) -> None:
    async with db.sessions() as session, session.begin():
        await session.execute(update(AgentToken).where(AgentToken.id == token_id).values(**values))


async def stored_hashes(db: Database) -> list[str]:
    async with db.sessions() as session:
        return list(await session.scalars(select(AgentToken.token_hash)))


async def listed(client: TestClient, path: str, headers: dict[str, str]) -> list[dict[str, object]]:
    response = await client.get(path, headers=headers)
    assert response.status == 200, await response.text()
    return (await response.json())["items"]


@on_sqlite
async def test_an_agent_lists_its_own_tokens_without_any_secret(client: TestClient, db: Database) -> None:
    laptop_id, laptop = await issue(db, "kim", label="laptop")
    phone_id, phone = await issue(db, "kim", label="phone", valid_days=30)
    other_id, _ = await issue(db, "lea", label="lea-laptop")
    assert (await client.get("/api/me", headers=bearer(laptop))).status == 200

    response = await client.get("/api/me/tokens", headers=bearer(laptop))
    assert response.status == 200
    text = await response.text()
    items = (await response.json())["items"]
    assert [item["id"] for item in items] == [phone_id, laptop_id]  # newest first, only kim's
    assert all(set(item) == TOKEN_FIELDS for item in items)
    by_label = {item["label"]: item for item in items}
    assert by_label["laptop"]["state"] == by_label["phone"]["state"] == "active"
    # The token that asked has been used just now; the phone's never.
    used = datetime.fromisoformat(by_label["laptop"]["last_used_at"])
    assert abs(utcnow() - used) < timedelta(minutes=1)
    assert by_label["phone"]["last_used_at"] is None
    assert by_label["laptop"]["expires_at"] is None
    expires = datetime.fromisoformat(by_label["phone"]["expires_at"])
    created = datetime.fromisoformat(by_label["phone"]["created_at"])
    assert abs(expires - created - timedelta(days=30)) < timedelta(minutes=1)
    # Neither a secret nor its digest leaves the server, nor anything that looks like one.
    for secret in (laptop, phone):
        assert secret not in text and secret.removeprefix("chub_") not in text
    for digest in await stored_hashes(db):
        assert digest not in text
    assert "chub_" not in text and "hash" not in text
    assert other_id not in [item["id"] for item in items]


@on_sqlite
async def test_a_revoked_token_is_refused_at_once_and_listed_as_revoked(client: TestClient, db: Database) -> None:
    old_id, old = await issue(db, "kim", label="old")
    new_id, new = await issue(db, "kim", label="new")
    assert (await client.get("/api/me", headers=bearer(old))).status == 200
    # An agent revokes its own token (a lost laptop), using another of its own.
    assert (await client.delete(f"/api/tokens/{old_id}", headers=bearer(new))).status == 204
    refused = await client.get("/api/me", headers=bearer(old))
    assert refused.status == 401 and (await refused.json())["error"]["code"] == "unauthorized"
    assert (await client.get("/api/me", headers=bearer(new))).status == 200

    assert [item["id"] for item in await listed(client, "/api/me/tokens", bearer(new))] == [new_id]
    everything = {item["id"]: item for item in await listed(client, "/api/me/tokens?all=1", bearer(new))}
    assert everything[old_id]["state"] == "revoked" and everything[old_id]["revoked_at"] is not None
    assert everything[new_id]["state"] == "active" and everything[new_id]["revoked_at"] is None
    # Revoking again changes nothing and is no error; the first revocation time stays.
    assert (await client.delete(f"/api/tokens/{old_id}", headers=bearer(new))).status == 204
    again = {item["id"]: item for item in await listed(client, "/api/me/tokens?all=1", bearer(new))}
    assert again[old_id]["revoked_at"] == everything[old_id]["revoked_at"]
    # An agent may end its very own session too; after that it is refused.
    assert (await client.delete(f"/api/tokens/{new_id}", headers=bearer(new))).status == 204
    assert (await client.get("/api/me/tokens", headers=bearer(new))).status == 401


@on_sqlite
async def test_an_expired_token_is_refused_and_listed_as_expired(client: TestClient, db: Database) -> None:
    stale_id, stale = await issue(db, "kim", label="stale", valid_days=1)
    _, current = await issue(db, "kim", label="current")
    assert (await client.get("/api/me", headers=bearer(stale))).status == 200
    await set_token(db, stale_id, expires_at=utcnow() - timedelta(seconds=1))
    assert (await client.get("/api/me", headers=bearer(stale))).status == 401
    assert "stale" not in [item["label"] for item in await listed(client, "/api/me/tokens", bearer(current))]
    everything = {item["id"]: item for item in await listed(client, "/api/me/tokens?all=1", bearer(current))}
    assert everything[stale_id]["state"] == "expired" and everything[stale_id]["revoked_at"] is None
    # all= must be exactly 1: anything else lists the usable tokens only.
    assert "stale" not in [item["label"] for item in await listed(client, "/api/me/tokens?all=yes",
                                                                   bearer(current))]


@on_sqlite
async def test_an_agent_cannot_see_or_revoke_another_agents_tokens(
        client: TestClient, db: Database, admin_headers: dict[str, str]) -> None:
    _, kim = await issue(db, "kim")
    lea_id, lea = await issue(db, "lea")
    refused = await client.delete(f"/api/tokens/{lea_id}", headers=bearer(kim))
    # 404, not 403: an agent does not even learn that the id exists.
    assert refused.status == 404 and (await refused.json())["error"]["code"] == "not_found"
    assert (await client.delete("/api/tokens/999999", headers=bearer(kim))).status == 404
    assert (await client.get("/api/me", headers=bearer(lea))).status == 200
    lea_agent = (await (await client.get("/api/me", headers=bearer(lea))).json())["id"]
    assert (await client.get(f"/api/agents/{lea_agent}/tokens", headers=bearer(kim))).status == 403
    # An admin lists and revokes anyone's.
    admin_view = await listed(client, f"/api/agents/{lea_agent}/tokens", admin_headers)
    assert [item["id"] for item in admin_view] == [lea_id]
    assert lea not in str(admin_view)
    assert (await client.delete(f"/api/tokens/{lea_id}", headers=admin_headers)).status == 204
    assert (await client.get("/api/me", headers=bearer(lea))).status == 401
    assert [item["state"] for item in await listed(client, f"/api/agents/{lea_agent}/tokens?all=1",
                                                   admin_headers)] == ["revoked"]
    assert await listed(client, f"/api/agents/{lea_agent}/tokens", admin_headers) == []
    assert (await client.get("/api/me", headers=bearer(kim))).status == 200
    assert (await client.get("/api/agents/999999/tokens", headers=admin_headers)).status == 404
    assert (await client.delete("/api/tokens/999999", headers=admin_headers)).status == 404


@on_sqlite
async def test_a_revocation_is_in_the_audit_trail(client: TestClient, db: Database,
                                                  admin_headers: dict[str, str]) -> None:
    token_id, _ = await issue(db, "kim")
    assert (await client.delete(f"/api/tokens/{token_id}", headers=admin_headers)).status == 204
    async with db.sessions() as session:
        [event] = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == "token_revoked")))
    assert (event.subject_kind, event.subject_id, event.status) == ("token", token_id, 204)
    assert event.route == "DELETE /api/tokens/{id}"


# --- the store -------------------------------------------------------------------------------------


@on_sqlite
async def test_prune_deletes_only_tokens_that_ended_before_the_cutoff(db: Database) -> None:
    now = utcnow()
    cutoff = now - timedelta(days=30)
    ids = {}
    for label in ("active", "no-expiry-used", "expires-later", "expired-long-ago", "expired-recently",
                  "revoked-long-ago", "revoked-recently", "revoked-long-ago-expiring-later"):
        ids[label], _ = await issue(db, "kim", label=label)
    await set_token(db, ids["expires-later"], expires_at=now + timedelta(days=400))
    await set_token(db, ids["no-expiry-used"], last_used_at=now - timedelta(days=90))
    await set_token(db, ids["expired-long-ago"], expires_at=cutoff - timedelta(seconds=1))
    await set_token(db, ids["expired-recently"], expires_at=cutoff + timedelta(days=1))
    await set_token(db, ids["revoked-long-ago"], revoked_at=cutoff - timedelta(days=5))
    await set_token(db, ids["revoked-recently"], revoked_at=now - timedelta(days=1))
    await set_token(db, ids["revoked-long-ago-expiring-later"], revoked_at=cutoff - timedelta(days=1),
                    expires_at=now + timedelta(days=10))
    async with db.sessions() as session, session.begin():
        assert await agents.prune_tokens(session, ended_before=cutoff) == 3
    async with db.sessions() as session:
        kept = set(await session.scalars(select(AgentToken.label)))
        assert kept == {"active", "no-expiry-used", "expires-later", "expired-recently", "revoked-recently"}
        agent = await agents.get_agent_by_name(session, "kim")
        states = {t.label: agents.token_state(t) for t in await agents.list_tokens(session, agent,
                                                                                   include_ended=True)}
    assert states == {"active": "active", "no-expiry-used": "active", "expires-later": "active",
                      "expired-recently": "expired", "revoked-recently": "revoked"}
    async with db.sessions() as session, session.begin():
        assert await agents.prune_tokens(session, ended_before=cutoff) == 0


def test_token_state_at_the_edges() -> None:
    now = utcnow()
    assert agents.token_state(AgentToken(expires_at=None, revoked_at=None), now) == "active"
    assert agents.token_state(AgentToken(expires_at=now + timedelta(seconds=1), revoked_at=None), now) == "active"
    assert agents.token_state(AgentToken(expires_at=now, revoked_at=None), now) == "expired"
    # Revoked wins over expired: it says what someone did.
    assert agents.token_state(AgentToken(expires_at=now - timedelta(days=1), revoked_at=now), now) == "revoked"


# --- the CLI (in process) ------------------------------------------------------------------------


run = run_cli


def works(config: Path, token: str) -> bool:
    async def check() -> bool:
        settings = Settings(database=DatabaseSettings(url=f"sqlite+aiosqlite:///{config.parent / 'cli.db'}"))
        async with open_database(settings) as db, db.sessions() as session:
            return await agents.authenticate(session, token) is not None
    return asyncio.run(check())


def token_lines(out: str) -> dict[int, str]:
    """`agents tokens` output: the line of each token id."""
    found = {}
    for line in out.splitlines():
        match = re.match(r"\s*(\d+)\s", line)
        if match:
            found[int(match.group(1))] = line
    return found


def test_cli_lists_and_revokes_tokens(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(config, capsys, "agents", "add", "kim", "--extension", "31")
    assert code == 0
    first = re.search(r"chub_\S+", out).group(0)  # type: ignore[union-attr]
    assert run(config, capsys, "agents", "add", "lea")[0] == 0
    code, out, _ = run(config, capsys, "agents", "token", "kim", "--label", "laptop", "--days", "3")
    assert code == 0 and "shown once" in out
    laptop = re.search(r"chub_\S+", out).group(0)  # type: ignore[union-attr]

    code, out, _ = run(config, capsys, "agents", "tokens", "kim")
    assert code == 0
    lines = token_lines(out)
    assert len(lines) == 2
    laptop_id, first_id = sorted(lines, reverse=True)  # newest first
    assert list(lines) == [laptop_id, first_id]
    laptop_line = lines[laptop_id]
    assert "active" in laptop_line and "laptop" in laptop_line and "created " in laptop_line
    in_three_days = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%d")
    assert f"expires {in_three_days}" in laptop_line and "last used -" in laptop_line
    assert "expires -" in lines[first_id]
    assert "chub_" not in out and first not in out and laptop not in out
    assert works(config, first) and works(config, laptop)
    assert "last used 20" in token_lines(run(config, capsys, "agents", "tokens", "kim")[1])[laptop_id]

    code, out, _ = run(config, capsys, "agents", "revoke", "kim", "--token", str(laptop_id))
    assert code == 0 and "revoked 1 token(s) of 'kim'" in out
    assert not works(config, laptop) and works(config, first)
    assert list(token_lines(run(config, capsys, "agents", "tokens", "kim")[1])) == [first_id]
    everything = token_lines(run(config, capsys, "agents", "tokens", "kim", "--all")[1])
    assert "revoked" in everything[laptop_id] and "active" in everything[first_id]

    code, out, _ = run(config, capsys, "agents", "revoke", "kim", "--all")
    assert code == 0 and "revoked 1 token(s)" in out  # the one still active
    assert not works(config, first)
    code, out, _ = run(config, capsys, "agents", "tokens", "kim")
    assert code == 0 and out.strip() == "'kim' has no active tokens"


def test_cli_revoke_refuses_another_agents_token_and_unknown_names(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(config, capsys, "agents", "add", "kim")
    code, out, _ = run(config, capsys, "agents", "add", "lea")
    lea = re.search(r"chub_\S+", out).group(0)  # type: ignore[union-attr]
    [lea_id] = token_lines(run(config, capsys, "agents", "tokens", "lea")[1])
    code, out, err = run(config, capsys, "agents", "revoke", "kim", "--token", str(lea_id))
    assert code == 2 and f"no token with id {lea_id}" in err and "revoked" not in out
    assert works(config, lea)
    code, _, err = run(config, capsys, "agents", "tokens", "nobody")
    assert code == 2 and "no agent named 'nobody'" in err
    with pytest.raises(SystemExit) as usage:  # neither --token nor --all: argparse refuses
        cli.main(["--config", str(config), "agents", "revoke", "kim"])
    assert usage.value.code == 2
    capsys.readouterr()


def test_cli_refuses_a_token_that_would_be_born_expired(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(config, capsys, "agents", "add", "kim")
    for days in ("0", "-5"):
        with pytest.raises(SystemExit) as usage:
            cli.main(["--config", str(config), "agents", "token", "kim", "--days", days])
        assert usage.value.code == 2
        assert "a whole number of at least 1" in capsys.readouterr().err
    assert len(token_lines(run(config, capsys, "agents", "tokens", "kim")[1])) == 1  # only the one from `add`
