"""The agent console as agents use it: sign-in, screen-pops, notes, the timeline, the work list."""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from conftest import Team, new_contact, sign_in, wait_for_entry, watched
from playwright.sync_api import BrowserContext, Page, expect


@pytest.fixture
def tracker() -> Iterator[list[str]]:
    """A web server on loopback standing in for a sender's tracking pixel: it lists what was fetched."""
    fetched: list[str] = []

    class Pixel(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            fetched.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/gif")
            self.end_headers()
            self.wfile.write(b"GIF89a")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pixel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fetched.insert(0, f"http://127.0.0.1:{server.server_address[1]}")  # the first item: its base URL
    yield fetched
    server.shutdown()
    server.server_close()


def call_id() -> str:
    return f"console-{uuid.uuid4().hex[:12]}"


def pop_of(page: Page, provider_call_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f'.pop[data-source-call-id="{provider_call_id}"]')


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_it(team: Team, page: Page,
                                                                     context: BrowserContext) -> None:
    page.goto(team.server.base + "/")
    expect(page.locator("#login-form")).to_be_visible()
    page.locator("#login-token").fill("chub_not-a-real-token")
    page.locator("#login-form button[type=submit]").click()
    expect(page.locator("#login-error")).to_contain_text("Anmeldung fehlgeschlagen")

    sign_in(page, team.server, team.anna)
    expect(page.locator("#who")).to_have_text("Anna Schmidt")
    [cookie] = context.cookies()
    assert cookie["name"] == "commhub_session"
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != team.anna
    assert page.evaluate("document.cookie") == ""  # out of reach of any script
    assert page.url == team.server.base + "/"  # nothing about the agent or a customer in the address

    page.reload()  # the session survives a reload
    expect(page.locator("#console-view")).to_be_visible()
    page.locator("#logout").click()
    expect(page.locator("#login-form")).to_be_visible()
    status, _ = team.server.request("GET", "/api/me", token=cookie["value"])
    assert status == 401  # the session token is revoked, not just forgotten by the browser
    page.reload()
    expect(page.locator("#login-form")).to_be_visible()


def test_language_follows_the_browser_and_can_be_switched(team: Team, browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        sign_in(page, team.server, team.anna)
        expect(page.locator("#pops-title")).to_have_text("Calls")
        expect(page.locator("#connection")).to_have_text("connected")
        page.locator("#language").select_option("de")
        expect(page.locator("#pops-title")).to_have_text("Anrufe")
        expect(page.locator("html")).to_have_attribute("lang", "de")
        page.reload()
        expect(page.locator("#work-title")).to_have_text("Arbeitsliste")  # the choice is remembered
    finally:
        context.close()


def test_a_ringing_call_pops_with_the_customer_and_follows_the_call(team: Team, page: Page) -> None:
    new_contact(team, "Jürgen", "Müller", phone="030 1234567", company="Müller Maschinenbau GmbH", customer_class="A")
    sign_in(page, team.server, team.anna)
    provider_id = call_id()
    posted = team.server.call_event("ringing", provider_id, caller="+49 30 1234567", targets=("10",))
    card = pop_of(page, provider_id)
    expect(card).to_be_visible()
    seen = time.time()
    print(f"POST to visible card: {(seen - posted) * 1000:.0f} ms (upper bound: includes the poll)")
    expect(card.locator(".pop-number")).to_have_text("+49 30 1234567")
    expect(card.locator(".match-name")).to_have_text("Jürgen Müller")
    expect(card.locator(".match-company")).to_have_text("Müller Maschinenbau GmbH")
    expect(card.locator(".badge")).to_have_text("A")
    expect(card.locator(".pop-state")).to_have_text("klingelt")

    team.server.call_event("answered", provider_id, caller="+49 30 1234567", answered_by="11")
    expect(card.locator(".pop-outcome")).to_have_text("angenommen von Ben Weber")
    team.server.call_event("ended", provider_id, caller="+49 30 1234567", answered_by="11", duration=95)
    expect(card.locator(".pop-outcome")).to_contain_text("beendet: beendet · Dauer 1:35 min")
    expect(card).to_have_attribute("data-state", "completed")
    assert page.dialogs == [] and page.errors == []  # type: ignore[attr-defined]


def test_unknown_and_withheld_callers_are_said_to_be_so(team: Team, page: Page) -> None:
    sign_in(page, team.server, team.anna)
    unknown, withheld = call_id(), call_id()
    team.server.call_event("ringing", unknown, caller="+49 151 23456789")
    card = pop_of(page, unknown)
    expect(card.locator(".pop-number")).to_have_text("+49 1512 3456789")
    expect(card.locator(".pop-unknown")).to_have_text("Unbekannter Anrufer")
    expect(card.locator(".pop-facts")).to_contain_text("DE · Mobilfunk")
    team.server.call_event("ringing", withheld, caller="anonymous")
    expect(pop_of(page, withheld).locator(".pop-number")).to_have_text("Rufnummer unterdrückt")


def test_several_matching_files_are_all_listed_with_their_reason(team: Team, page: Page) -> None:
    new_contact(team, "Petra", "Lang", phone="089 7654321", company="Lang & Söhne KG")
    new_contact(team, "Paul", "Lang", phone="089 7654321", company="Lang & Söhne KG")
    sign_in(page, team.server, team.anna)
    provider_id = call_id()
    team.server.call_event("ringing", provider_id, caller="+49 89 7654321")
    card = pop_of(page, provider_id)
    expect(card.locator(".pop-ambiguous")).to_have_text("2 Akten passen zu dieser Nummer – keine wurde ausgewählt:")
    expect(card.locator(".match-name")).to_have_text(["Paul Lang", "Petra Lang"])
    expect(card.locator(".match-reason").first).to_have_text("Geschäfts-Nummer dieser Person")


def test_a_note_from_the_pop_lands_in_the_customers_timeline(team: Team, page: Page) -> None:
    contact = new_contact(team, "Sabine", "Vogel", phone="040 5556667", company="Vogel Logistik")
    sign_in(page, team.server, team.anna)
    provider_id = call_id()
    team.server.call_event("ringing", provider_id, caller="040 5556667")
    card = pop_of(page, provider_id)
    card.locator(".note-text").fill("Will ein Angebot über 40 Paletten, Rückruf Donnerstag.")
    card.locator(".note button[type=submit]").click()
    expect(card.locator(".note-state")).to_have_text("gespeichert")
    expect(card.locator(".note-text")).to_have_value("")

    card.locator(".match-name").click()
    timeline = page.locator("#file .timeline")
    expect(page.locator("#file .file-name")).to_contain_text("Sabine Vogel")
    expect(timeline.locator(".entry.kind-note").first).to_contain_text("Will ein Angebot über 40 Paletten")
    expect(timeline.locator(".entry.kind-note .entry-agent").first).to_have_text("Anna Schmidt")
    _, history = team.server.request("GET", f"/api/contacts/{contact}/history", token=team.anna)
    assert [e["body"] for e in history["items"] if e["kind"] == "note"] == [
        "Will ein Angebot über 40 Paletten, Rückruf Donnerstag."]  # stored once


def test_search_finds_by_name_company_number_and_email_and_notes_go_in_the_file(team: Team, page: Page) -> None:
    new_contact(team, "Karin", "Zimmermann", phone="0221 998877", company="Zimmermann Druck",
                email="k.zimmermann@zimmermann-druck.de")
    sign_in(page, team.server, team.anna)
    for text in ("zimmermann", "Druck", "0221 998877", "k.zimmermann@zimmermann"):
        page.locator("#search").fill(text)
        page.locator("#search-form button[type=submit]").click()
        expect(page.locator("#search-results .result-name").first).to_have_text("Karin Zimmermann")
    page.locator("#search-results .result").first.click()
    expect(page.locator("#file .file-name")).to_contain_text("Karin Zimmermann")
    expect(page.locator("#file .timeline-empty")).to_be_visible()
    page.locator("#file .file-note textarea").fill("Katalog 2027 zugeschickt")
    page.locator("#file .file-note button[type=submit]").click()
    expect(page.locator("#file .timeline .entry").first).to_contain_text("Katalog 2027 zugeschickt")
    expect(page.locator("#file .timeline .entry")).to_have_count(1)  # the REST reply and the push: shown once


def test_a_missed_call_becomes_a_callback_task_in_the_work_list(team: Team, page: Page) -> None:
    new_contact(team, "Otto", "Brandt", phone="0711 4443332", company="Brandt Elektro")
    sign_in(page, team.server, team.anna)
    provider_id = call_id()
    team.server.call_event("ringing", provider_id, caller="0711 4443332")
    team.server.call_event("ended", provider_id, caller="0711 4443332", outcome="missed")
    expect(pop_of(page, provider_id).locator(".pop-outcome")).to_contain_text("beendet: verpasst")
    task = page.locator("#tasks .task", has_text="Rückruf Otto Brandt")
    expect(task).to_be_visible()
    expect(page.locator("#missed .missed-call", has_text="Otto Brandt")).to_be_visible()
    task.locator(".task-title").click()  # opens the customer
    expect(page.locator("#file .file-name")).to_contain_text("Otto Brandt")
    expect(page.locator("#file .timeline .entry.kind-call").first).to_contain_text("verpasst")
    task.locator("button.done").click()
    expect(page.locator("#tasks .task", has_text="Rückruf Otto Brandt")).to_have_count(0)
    page.locator("#work-team").click()
    expect(page.locator("#tasks .task", has_text="Rückruf Otto Brandt")).to_have_count(0)


def test_markup_in_names_and_mail_stays_inert(team: Team, page: Page, tracker: list[str]) -> None:
    payload = "<img src=x onerror=alert(1)>"
    new_contact(team, payload, "<script>alert(2)</script>", phone="0351 1112223", company=payload,
                email="xss@angreifer.example")
    sign_in(page, team.server, team.anna)
    provider_id = call_id()
    team.server.call_event("ringing", provider_id, caller="0351 1112223")
    card = pop_of(page, provider_id)
    expect(card.locator(".match-name")).to_have_text(f"{payload} <script>alert(2)</script>")
    assert card.locator("img").count() == 0 and card.locator("script").count() == 0

    message = EmailMessage()
    message["From"] = f"{payload} <xss@angreifer.example>"
    message["To"] = "Vertrieb <vertrieb@example.de>"
    message["Subject"] = "<script>alert(3)</script> Angebot"
    message["Message-ID"] = make_msgid()
    message.set_content("Text <b>ohne</b> HTML")
    message.add_alternative('<p>Hallo</p><script>alert(4)</script><img src="x" onerror="alert(5)">'
                            f'<img src="{tracker[0]}/pixel.gif"><a href="javascript:alert(6)">klick</a>',
                            subtype="html")
    message.add_attachment(b"%PDF-1.4 Angebot 2027", maintype="application", subtype="pdf",
                           filename="angebot-2027.pdf")
    assert team.dovecot is not None
    team.dovecot.append("INBOX", bytes(message))
    contact = int(card.locator(".match").get_attribute("data-id") or 0)
    wait_for_entry(team, contact, "email")  # the archiver files it within moments of its arrival
    card.locator(".match-name").click()
    entry = page.locator("#file .timeline .entry.kind-email")
    expect(entry.locator(".email-open")).to_have_text("<script>alert(3)</script> Angebot")
    entry.locator(".email-open").click()
    dialog = page.locator("#email-dialog")
    expect(dialog.locator(".email-subject")).to_have_text("<script>alert(3)</script> Angebot")
    expect(dialog.locator(".remote-blocked")).to_be_visible()
    frame = page.frame_locator("#email-dialog iframe")
    expect(frame.locator("p")).to_have_text("Hallo")
    frame.locator("a").click()
    page.wait_for_timeout(300)
    assert page.dialogs == [], page.dialogs  # type: ignore[attr-defined]
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
    assert tracker[1:] == []  # the remote image was never fetched: the reader's visit stays unknown

    attachment = dialog.locator(".email-attachments a")
    expect(attachment).to_have_text("angebot-2027.pdf")
    with page.expect_download() as download:
        attachment.click()
    saved = download.value
    assert saved.suggested_filename == "angebot-2027.pdf"
    assert saved.path().read_bytes() == b"%PDF-1.4 Angebot 2027"


def test_two_tabs_of_one_agent_both_get_the_pop(team: Team, context: BrowserContext) -> None:
    first = watched(context.new_page())
    sign_in(first, team.server, team.ben)
    second = watched(context.new_page())
    second.goto(team.server.base + "/")  # the same browser: already signed in
    expect(second.locator("#connection")).to_have_attribute("data-state", "connected")
    provider_id = call_id()
    team.server.call_event("ringing", provider_id, caller="+49 30 99887766", targets=("11",))
    expect(pop_of(first, provider_id)).to_be_visible()
    expect(pop_of(second, provider_id)).to_be_visible()
