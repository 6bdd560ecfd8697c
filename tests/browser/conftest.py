"""The console in a real headless Chromium against a real `commhub serve` on loopback.

One server per module (starting one takes about a second), a fresh browser context per test (its own
cookies and storage: a fresh sign-in). The tests use Playwright's sync API: a test is an agent
clicking through the page, and the server is another process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
from support.browser import require_chromium
from support.commhub_process import CommhubProcess
from support.dovecot import Dovecot, require_dovecot

# The page reacts within milliseconds; a slow CI machine still gets some room before a test fails.
expect.set_options(timeout=10_000)


@dataclass
class Team:
    """The running server and who works there."""

    server: CommhubProcess
    dovecot: Dovecot | None
    anna: str  # agent token, extension 10
    ben: str  # agent token, extension 11
    admin: str


# Module-scoped, not session-scoped: the sync API keeps an event loop running in this thread while
# it is open, and the async tests of later modules need the thread to themselves.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    require_chromium()
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=require_chromium(), headless=True)
    yield chromium
    chromium.close()


def team_server(directory: Path, dovecot: Dovecot | None = None) -> Team:
    """A commhub with two agents and an admin; watching the Dovecot mailbox `vertrieb` if one is given."""
    mailbox = "" if dovecot is None else (
        f'[[mailboxes]]\nname = "vertrieb"\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
        f'username = "{dovecot.user}"\npassword = "{dovecot.password}"\naddresses = ["vertrieb@example.de"]\n')
    server = CommhubProcess(directory, extra_config=mailbox)
    server.cli("db", "upgrade")
    team = Team(server, dovecot, anna=server.add_agent("Anna Schmidt", "10"),
                ben=server.add_agent("Ben Weber", "11"), admin=server.add_agent("Admin", "99", role="admin"))
    server.start()
    return team


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    require_dovecot()
    dovecot = Dovecot(tmp_path_factory.mktemp("dovecot"))
    dovecot.start()
    try:
        team = team_server(tmp_path_factory.mktemp("commhub"), dovecot)
        try:
            yield team
        finally:
            team.server.stop()
    finally:
        dovecot.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(locale="de-DE", viewport={"width": 1400, "height": 900})
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return watched(context.new_page())


def watched(page: Page) -> Page:
    """A page that records every dialog (an XSS payload that ran would open one) and script error."""
    page.dialogs = []  # type: ignore[attr-defined]
    page.errors = []  # type: ignore[attr-defined]

    def on_dialog(dialog: object) -> None:
        page.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: page.errors.append(str(error)))  # type: ignore[attr-defined]
    return page


def sign_in(page: Page, server: CommhubProcess, token: str) -> None:
    page.goto(server.base + "/")
    page.locator("#login-token").fill(token)
    page.locator("#login-form button[type=submit]").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")


def new_contact(team: Team, first: str, last: str, *, phone: str, company: str | None = None,
                customer_class: str | None = None, email: str | None = None) -> int:
    body: dict[str, object] = {"first_name": first, "last_name": last, "phones": [{"kind": "work", "number": phone}]}
    if company:
        body["company"] = company
    if customer_class:
        body["class"] = customer_class
    if email:
        body["emails"] = [email]
    status, reply = team.server.request("POST", "/api/contacts", token=team.admin, body=body)
    assert status == 201, reply
    return int(reply["id"])


def wait_for_entry(team: Team, contact: int, kind: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, history = team.server.request("GET", f"/api/contacts/{contact}/history", token=team.admin)
        if any(entry["kind"] == kind for entry in history["items"]):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {kind} entry for contact {contact} after {timeout} s")


def note_bodies(team: Team, contact: int) -> list[str]:
    _, history = team.server.request("GET", f"/api/contacts/{contact}/history", token=team.admin)
    return [entry["body"] for entry in history["items"] if entry["kind"] == "note"]
