"""The console keeps working across a network drop and a server restart: no pop and no note is lost."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Team, new_contact, note_bodies, sign_in, team_server, wait_for_entry, watched
from playwright.sync_api import BrowserContext, Locator, Page, expect


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
    contact, page, card = pop_for_a_customer(lone_team, context, "Lena", "Hoff", "+49 30 1112233")
    # The tab loses the network, and meanwhile the server restarts and a call rings for this agent.
    note_while_the_server_restarts(lone_team, context, page, card, "Notiz ohne Netz geschrieben")
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
    assert note_bodies(lone_team, contact) == ["Notiz ohne Netz geschrieben"]
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
    assert note_bodies(lone_team, contact) == ["einmal"]


def test_a_note_written_offline_outlives_an_ended_session(lone_team: Team, context: BrowserContext) -> None:
    """The session ends while a note waits: the tab says so, and the note goes out once the same agent
    is signed in again."""
    server = lone_team.server
    contact, page, card = pop_for_a_customer(lone_team, context, "Jonas", "Reuter", "+49 40 7778889")
    note_while_the_server_restarts(lone_team, context, page, card, "Will den Vertrag verlängern")
    [cookie] = context.cookies()
    ended = urllib.request.Request(f"{server.base}/api/session", method="DELETE", headers={
        "Cookie": f"commhub_session={cookie['value']}", "Origin": server.base})
    urllib.request.urlopen(ended, timeout=10).close()  # as if it expired: the token is no longer valid
    context.set_offline(False)
    expect(page.locator("#login-error")).to_have_text("Sitzung abgelaufen – bitte neu anmelden")

    page.locator("#login-token").fill(lone_team.anna)
    page.locator("#login-form button[type=submit]").click()
    wait_for_entry(lone_team, contact, "note")
    assert note_bodies(lone_team, contact) == ["Will den Vertrag verlängern"]
    assert page.errors == []  # type: ignore[attr-defined]


def pop_for_a_customer(team: Team, context: BrowserContext, first: str, last: str,
                       number: str) -> tuple[int, Page, Locator]:
    """A customer, Anna signed in, and the card of a call from that customer ringing on her screen."""
    contact = new_contact(team, first, last, phone=number)
    page = watched(context.new_page())
    sign_in(page, team.server, team.anna)
    provider_id = f"call-{uuid.uuid4().hex[:8]}"
    team.server.call_event("ringing", provider_id, caller=number)
    card = page.locator(f'.pop[data-source-call-id="{provider_id}"]')
    expect(card).to_be_visible()
    return contact, page, card


def note_while_the_server_restarts(team: Team, context: BrowserContext, page: Page, card: Locator, text: str) -> None:
    """The tab goes offline, the server stops, a note is written and waits; the server is back (the tab
    stays offline until the test says otherwise)."""
    context.set_offline(True)
    team.server.stop()
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    card.locator(".note-text").fill(text)
    card.locator(".note button[type=submit]").click()
    expect(card.locator(".note-state")).to_have_text("offline – wird gespeichert, sobald die Verbindung steht")
    team.server.start()
