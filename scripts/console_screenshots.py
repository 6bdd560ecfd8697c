"""The README's console screenshots, made from the demo as a newcomer would see it.

    .venv/bin/python scripts/console_screenshots.py [--out docs]

Starts `commhub serve --demo` in a temp dir on a free loopback port, signs in as the demo agent
`anna` in Debian's headless Chromium, rings her phone from a demo customer's number, writes a call
note and opens the customer's file. Writes console-pop.png and console-timeline.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.browser import find_chromium  # noqa: E402
from support.commhub_process import free_port, start_demo  # noqa: E402

DEMO_SECRET = "demo-secret"


def ring(port: int, event: str, call_id: str, **fields: str) -> None:
    body = "&".join([f"event={event}", f"callId={call_id}", "direction=in", "to=4930555000", "user=10",
                     *(f"{name}={value}" for name, value in fields.items())])
    request = urllib.request.Request(f"http://127.0.0.1:{port}/hooks/demo?token={DEMO_SECRET}",
                                     data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    urllib.request.urlopen(request, timeout=10).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("Chromium is not installed (Debian package chromium)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="commhub-shots-") as workdir:
        process, token = start_demo(Path(workdir), port)
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=chromium, headless=True)
                page = browser.new_page(locale="de-DE", viewport={"width": 1440, "height": 860})
                page.goto(f"http://127.0.0.1:{port}/")
                page.fill("#login-token", token)
                page.click("#login-form button[type=submit]")
                expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
                ring(port, "newCall", "shot-1", **{"from": "4930123456710"})
                card = page.locator('.pop[data-source-call-id="shot-1"]')
                expect(card.locator(".match-name")).to_be_visible()
                card.locator(".note-text").fill("Fragt nach dem Liefertermin der Wärmepumpe, Rückruf morgen früh.")
                card.locator(".note button[type=submit]").click()
                expect(card.locator(".note-state")).to_have_text("gespeichert")
                ring(port, "newCall", "shot-2", **{"from": "4915123456789"})
                expect(page.locator(".pop")).to_have_count(2)
                page.screenshot(path=str(args.out / "console-pop.png"))
                card.locator(".match-name").first.click()
                expect(page.locator("#file .timeline .entry").first).to_be_visible()
                page.screenshot(path=str(args.out / "console-timeline.png"))
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=20)
    print(f"wrote {args.out / 'console-pop.png'} and {args.out / 'console-timeline.png'}")


if __name__ == "__main__":
    main()
