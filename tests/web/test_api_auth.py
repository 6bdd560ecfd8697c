"""Nobody unauthenticated reads or writes; agents cannot reach admin routes; errors are JSON."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from commhub.commands.common import Database
from commhub.store import agents
from commhub.web.routes import ROUTES

API_ROUTES = [r for r in ROUTES if r.path.startswith("/api/") and not r.public]


def concrete(path: str) -> str:
    return path.replace("{id}", "1")


@pytest.mark.parametrize("route", API_ROUTES, ids=[f"{r.method} {r.path}" for r in API_ROUTES])
async def test_every_api_route_needs_a_token(client: TestClient, route: object) -> None:
    response = await client.request(route.method, concrete(route.path), json={})  # type: ignore[attr-defined]
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_wrong_scheme_or_unknown_token_is_refused(client: TestClient) -> None:
    for header in ("Basic YWRtaW46YWRtaW4=", "Bearer chub_not-a-real-token", "Bearer ", "chub_x"):
        response = await client.get("/api/contacts", headers={"Authorization": header})
        assert response.status == 401, header


async def test_revoked_and_expired_tokens_are_refused(client: TestClient, db: Database) -> None:
    async with db.sessions() as session, session.begin():
        agent = await agents.create_agent(session, "kim")
        revoked = await agents.issue_token(session, agent, label="old")
        current = await agents.issue_token(session, agent, label="new")
        await agents.revoke_tokens(session, agent, label="old")
    assert (await client.get("/api/me", headers={"Authorization": f"Bearer {revoked}"})).status == 401
    response = await client.get("/api/me", headers={"Authorization": f"Bearer {current}"})
    assert response.status == 200 and (await response.json())["name"] == "kim"


ADMIN_ROUTES = [r for r in API_ROUTES if r.admin]


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=[f"{r.method} {r.path}" for r in ADMIN_ROUTES])
async def test_agents_get_403_on_admin_routes(client: TestClient, agent_headers: dict[str, str],
                                              route: object) -> None:
    response = await client.request(route.method, concrete(route.path), json={"name": "x"},  # type: ignore[attr-defined]
                                     headers=agent_headers)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"


async def test_admin_adds_an_agent_whose_token_works(client: TestClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/api/agents", json={"name": "lea", "extensions": ["23"]}, headers=admin_headers)
    assert response.status == 201
    token = (await response.json())["token"]
    me = await (await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert me["name"] == "lea" and me["extensions"] == ["23"] and me["role"] == "agent"
    again = await client.post("/api/agents", json={"name": "lea"}, headers=admin_headers)
    assert again.status == 409


async def test_health_and_openapi_are_public(client: TestClient) -> None:
    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json())["status"] == "ok"
    document = await (await client.get("/api/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) >= {"/api/contacts", "/api/contacts/{id}/history"}
    assert "ContactIn" in document["components"]["schemas"]


async def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    response = await client.get("/nothing-here")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
