"""/readyz and /metrics as an operator's load balancer and Prometheus see them, on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import text
from support.phone import AgentClient, Phone

from commhub.keys import DRAINING, ENGINE
from telephony.conftest import Office, office_settings, open_office


@pytest.fixture
async def office(database_url: str) -> AsyncIterator[Office]:
    async for item in open_office(office_settings(database_url)):
        yield item


async def scrape(office: Office) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with office.http.get(office.base + "/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        body = await response.text()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body) for sample in family.samples}


async def test_ready_names_the_node_and_what_it_checked(office: Office, database_url: str) -> None:
    async with office.http.get(office.base + "/readyz") as response:
        body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ready" and body["database"] == "ok" and body["migrations"] == "current"
    assert body["node"] and body["mail"] == []
    # On PostgreSQL the node listens for the other nodes' messages; SQLite is one node by nature.
    assert body.get("push") == ("listening" if database_url.startswith("postgresql") else None)


async def test_not_ready_with_a_schema_behind_the_code_or_while_draining(office: Office) -> None:
    app = office.app
    async with app[ENGINE].begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    async with office.http.get(office.base + "/readyz") as response:
        body = await response.json()
    assert response.status == 503
    assert body["migrations"] == "pending" and "commhub db upgrade" in body["reasons"][0]
    app[DRAINING].set()
    async with office.http.get(office.base + "/readyz") as response:
        assert (response.status, (await response.json())["status"]) == (503, "draining")


async def test_metrics_count_webhooks_by_result_and_time_the_pops(office: Office) -> None:
    def webhooks(metrics: dict, source: str, result: str) -> float:  # type: ignore[type-arg]
        return metrics.get(("commhub_webhooks_total", (("result", result), ("source", source))), 0.0)

    before = await scrape(office)
    assert before[("commhub_agents_connected", ())] == 0
    anna = await AgentClient.connect(office.base, office.tokens["anna"])
    await office.phone.ring("m-1", "+49 30 1234567-10", "10")
    await anna.next_of("call.ringing")
    await office.phone.ring("m-1", "+49 30 1234567-10", "10")  # the same event again
    forged = Phone(office.base, office.http, secret="not-the-secret")
    assert (await forged.post({"event": "ringing", "call_id": "m-2", "from": "1", "to": "2"})).status == 401
    assert (await office.phone.post({"event": "ringing"})).status == 400
    async with office.http.post(office.base + "/hooks/no-such-source", data=b"{}") as response:
        assert response.status == 404
    after = await scrape(office)
    assert webhooks(after, "pbx", "stored") - webhooks(before, "pbx", "stored") == 1
    assert webhooks(after, "pbx", "duplicate") - webhooks(before, "pbx", "duplicate") == 1
    assert webhooks(after, "pbx", "refused") - webhooks(before, "pbx", "refused") == 1
    assert webhooks(after, "pbx", "invalid") - webhooks(before, "pbx", "invalid") == 1
    assert webhooks(after, "(unknown)", "unknown_source") == 1
    assert after[("commhub_agents_connected", ())] == 1
    pops = after[("commhub_pop_latency_seconds_count", (("type", "call.ringing"),))]
    assert pops == 1
    assert 0 < after[("commhub_pop_latency_seconds_sum", (("type", "call.ringing"),))] < 5
    assert after[("commhub_outbox_size", ())] == 0
    assert any(name == "commhub_node_info" for name, _labels in after)
    await anna.close()


async def test_metrics_hold_no_personal_data(office: Office) -> None:
    await office.phone.ring("m-3", "+49 30 1234567-10", "10")
    async with office.http.get(office.base + "/metrics") as response:
        body = await response.text()
    for personal in ("1234567", "Brandt", "anna", "@"):
        assert personal not in body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_metrics_token_closes_metrics_and_nothing_else(database_url: str) -> None:
    settings = office_settings(database_url)
    settings = settings.model_copy(update={"server": settings.server.model_copy(
        update={"metrics_token": SecretStr("scrape-secret-1")})})
    async for office in open_office(settings):
        for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 401),
                                ({"Authorization": "Bearer scrape-secret-1"}, 200)):
            async with office.http.get(office.base + "/metrics", headers=headers) as response:
                assert response.status == status
                if status == 401:
                    assert (await response.json())["error"]["code"]
        async with office.http.get(office.base + "/readyz") as response:
            assert response.status == 200
