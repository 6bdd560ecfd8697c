"""Vendors' documented requests, posted byte for byte over HTTP to a running commhub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import Office, office_settings, open_office
from support.http_fixture import adapter_fixtures, read_fixture

from commhub.settings import SourceSettings

SIPGATE_SECRET = "sg-token-5d0c91e2"  # what adapters/sipgate/fixtures/source.json signs with


@pytest.fixture
async def sipgate_office(tmp_path: Path) -> AsyncIterator[Office]:
    settings = office_settings(f"sqlite+aiosqlite:///{tmp_path / 'office.db'}")
    sipgate = SourceSettings(name="sipgate", adapter="sipgate", secret=SIPGATE_SECRET)
    async for office in open_office(settings.model_copy(update={"sources": [*settings.sources, sipgate]})):
        yield office


def fixture(name: str) -> bytes:
    [path] = [p for p in adapter_fixtures("sipgate") if p.stem == name]
    return read_fixture(path).body


async def post_sipgate(office: Office, name: str) -> tuple[int, str]:
    async with office.http.post(f"{office.base}/hooks/sipgate?token={SIPGATE_SECRET}", data=fixture(name),
                                headers={"Content-Type": "application/x-www-form-urlencoded"}) as response:
        return response.status, await response.text()


async def test_sipgates_readme_call_pops_up_and_subscribes_to_its_answer_and_hangup(sipgate_office: Office) -> None:
    office = sipgate_office
    async with office.http.post(f"{office.base}/api/agents", headers=office.headers("anna"),
                                json={"name": "alice", "extensions": ["w0"]}) as response:
        assert response.status == 201
        token = (await response.json())["token"]
    office.tokens["alice"] = token
    alice = await office.agent("alice")
    status, reply = await post_sipgate(office, "newCall__readme_inbound")
    assert status == 200
    # sipgate sends `answer` and `hangup` only to the URLs named in this reply.
    hook = f"{office.base}/hooks/sipgate?token={SIPGATE_SECRET}"
    assert f'onAnswer="{hook}"' in reply and f'onHangup="{hook}"' in reply
    pop = await alice.next_of("call.ringing")
    assert pop["call"]["caller"]["e164"] == "+492111234567" and pop["routed"] == "direct"
    assert (await post_sipgate(office, "answer__readme"))[0] == 200
    assert (await alice.next_of("call.answered"))["call"]["state"] == "answered"
    assert (await post_sipgate(office, "hangup__readme_normal_clearing"))[0] == 200
    assert (await alice.next_of("call.ended"))["call"]["state"] == "completed"


async def test_a_sipgate_request_without_its_token_changes_nothing(sipgate_office: Office) -> None:
    office = sipgate_office
    async with office.http.post(f"{office.base}/hooks/sipgate", data=fixture("newCall__readme_inbound"),
                                headers={"Content-Type": "application/x-www-form-urlencoded"}) as response:
        assert response.status == 401
    assert (await office.get("/api/calls"))["items"] == []
