"""The console keeps working across a network drop and a server restart: no pop and no note is lost."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Team, sign_in, team_server, watched
from playwright.sync_api import BrowserContext, expect


@pytest.fixture
def lone_team(tmp_path: Path) -> Iterator[Team]:
    team = team_server(tmp_path)
    try:
        yield team
    finally:
        team.server.stop()


def test_a_tab_reconnects_after_a_restart_and_shows_the_call_that_rang_meanwhile(
        lone_team: Team, context: BrowserContext) -> None:
    server = lone_team.server
    contact = server.request("POST", "/api/contacts", token=lone_team.admin, body={
        "first_name": "Lena", "last_name": "Hoff", "phones": [{"number": "+49 30 1112233"}]})[1]["id"]
    page = watched(context.new_page())
    sign_in(page, server, lone_team.anna)
    before = f"before-{uuid.uuid4().hex[:8]}"
    server.call_event("ringing", before, caller="+49 30 1112233")
    card = page.locator(f'.pop[data-source-call-id="{before}"]')
    expect(card).to_be_visible()

    # The tab loses the network, and meanwhile the server restarts and a call rings for this agent.
    context.set_offline(True)
    server.stop()
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    card.locator(".note-text").fill("Notiz ohne Netz geschrieben")
    card.locator(".note button[type=submit]").click()
    expect(card.locator(".note-state")).to_have_text("offline – wird gespeichert, sobald die Verbindung steht")
    server.start()
    meanwhile = f"meanwhile-{uuid.uuid4().hex[:8]}"
    server.call_event("ringing", meanwhile, caller="+49 30 4445566")
    server.call_event("ended", meanwhile, caller="+49 30 4445566", outcome="missed")
    page.wait_for_timeout(500)
    assert page.locator(f'.pop[data-source-call-id="{meanwhile}"]').count() == 0  # still offline

    context.set_offline(False)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    missed = page.locator(f'.pop[data-source-call-id="{meanwhile}"]')
    expect(missed).to_be_visible()  # replayed from the last seq the tab saw
    expect(missed.locator(".pop-outcome")).to_contain_text("verpasst")
    expect(card.locator(".note-state")).to_have_text("gespeichert")
    _, history = server.request("GET", f"/api/contacts/{contact}/history", token=lone_team.anna)
    assert [e["body"] for e in history["items"] if e["kind"] == "note"] == ["Notiz ohne Netz geschrieben"]
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_note_whose_confirmation_was_lost_is_not_saved_twice(lone_team: Team, context: BrowserContext) -> None:
    """The tab sends a pending note again after reconnecting; the server knows its ref and answers
    with the entry it already saved."""
    server = lone_team.server
    page = watched(context.new_page())
    sign_in(page, server, lone_team.ben)
    contact = server.request("POST", "/api/contacts", token=lone_team.admin,
                             body={"first_name": "Eva", "last_name": "Kern"})[1]["id"]
    ref = f"note-{uuid.uuid4()}"
    note = {"type": "note", "ref": ref, "contact_id": contact, "text": "einmal"}
    for _ in range(2):
        page.evaluate("""(note) => new Promise((resolve) => {
            const socket = new WebSocket(`ws://${location.host}/ws`);
            socket.onopen = () => socket.send(JSON.stringify(note));
            socket.onmessage = (event) => { if (JSON.parse(event.data).type === "note.saved") resolve(); };
        })""", note)
    _, history = server.request("GET", f"/api/contacts/{contact}/history", token=lone_team.ben)
    assert [entry["body"] for entry in history["items"]] == ["einmal"]
