"""`commhub serve --demo`, as the README's run command starts it, answers the walkthrough's questions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from support.commhub_process import free_port, start_demo


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    port = free_port()
    process, token = start_demo(tmp_path, port)
    try:
        yield f"http://127.0.0.1:{port}", token, tmp_path
    finally:
        process.terminate()
        process.wait(timeout=20)
        assert process.stdout is not None
        process.stdout.close()


async def test_demo_server_answers_the_walkthrough(demo_server: tuple[str, str, Path]) -> None:
    base, token, workdir = demo_server
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(f"{base}/healthz") as health:
            assert health.status == 200
        async with http.get(f"{base}/api/contacts", params={"phone": "030 1234567-10"}, headers=headers) as reply:
            match = await reply.json()
        assert [m["name"] for m in match["matches"]] == ["Jürgen Müller"]
        assert match["matches"][0]["company"] == "Müller Haustechnik GmbH"
        async with http.get(f"{base}/api/contacts", params={"phone": "+49 30 1234567-55"}, headers=headers) as reply:
            via = await reply.json()
        assert [(m["name"], m["via"], m["direct_dial"]) for m in via["matches"]] == [
            ("Müller Haustechnik GmbH", "switchboard", "55")]
        async with http.get(f"{base}/api/contacts", params={"phone": "+49 30 1234567"}, headers=headers) as reply:
            company = await reply.json()
        assert [(m["name"], m["number_kind"]) for m in company["matches"]] == [("Müller Haustechnik GmbH",
                                                                                "switchboard")]
        async with http.get(f"{base}/api/contacts", params={"phone": "089 2345678"}, headers=headers) as reply:
            shared = await reply.json()
        assert shared["ambiguous"] is True
        history_url = f"{base}/api/contacts/{match['matches'][0]['id']}/history"
        async with http.get(history_url, headers=headers) as reply:
            timeline = await reply.json()
        assert [e["kind"] for e in timeline["items"]] == ["note", "call"]
        async with http.get(f"{base}/api/contacts", params={"phone": "030 1234567-10"}) as reply:
            assert reply.status == 401
    assert (workdir / "var" / "commhub.db").is_file()

    env = {**os.environ, "COMMHUB_LOGGING__LEVEL": "warning"}
    found = subprocess.run([sys.executable, "-m", "commhub", "contacts", "find", "0171 2345678"], cwd=workdir,
                           env=env, capture_output=True, text=True, timeout=60)
    assert "Jürgen Müller" in found.stdout and "mobile number of this contact" in found.stdout


README = Path(__file__).resolve().parent.parent / "README.md"


def readme_ring_command() -> tuple[str, str]:
    """The README's `curl -d '…' 'URL'` line that rings the demo phone: (form body, URL)."""
    found = re.search(r"curl -d '([^']+)' '(http://127\.0\.0\.1:8080/hooks/demo\?token=[^']+)'",
                      README.read_text("utf-8"))
    assert found, "the README has no curl line that rings the demo source"
    return found.group(1), found.group(2)


class LineReader:
    """Lines of a child process's stdout, read by a thread so a test can wait with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never printed; got {''.join(self.lines)!r}")


async def test_the_readme_curl_line_pops_up_in_commhub_listen(demo_server: tuple[str, str, Path]) -> None:
    base, token, workdir = demo_server
    env = {**os.environ, "COMMHUB_LOGGING__LEVEL": "warning"}
    listener = subprocess.Popen([sys.executable, "-m", "commhub", "listen", "--url", base, "--token", token],
                                cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        output = LineReader(listener)
        output.wait_for("connected as anna")
        form, url = readme_ring_command()
        async with aiohttp.ClientSession() as http:
            async with http.post(url.replace("http://127.0.0.1:8080", base), data=form,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}) as reply:
                assert reply.status == 200, await reply.text()
        output.wait_for("RINGING +49 30 12345671")
        output.wait_for("Jürgen Müller, Müller Haustechnik GmbH, class A")
        output.wait_for("open tasks: 1 (Angebot A-2291 nachfassen)")
        assert listener.stdin is not None
        listener.stdin.write("note Rückruf morgen früh zugesagt\n")
        listener.stdin.flush()
        output.wait_for("note saved")
    finally:
        listener.terminate()
        listener.wait(timeout=20)
        for pipe in (listener.stdin, listener.stdout):
            if pipe is not None:
                pipe.close()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/contacts", params={"phone": "030 1234567-10"},
                            headers={"Authorization": f"Bearer {token}"}) as reply:
            contact_id = (await reply.json())["matches"][0]["id"]
        async with http.get(f"{base}/api/contacts/{contact_id}/history",
                            headers={"Authorization": f"Bearer {token}"}) as reply:
            newest = (await reply.json())["items"][0]
    assert (newest["kind"], newest["body"]) == ("note", "Rückruf morgen früh zugesagt")


def test_listen_refuses_a_bad_token_with_a_message(demo_server: tuple[str, str, Path]) -> None:
    base, _token, workdir = demo_server
    done = subprocess.run([sys.executable, "-m", "commhub", "listen", "--url", base, "--token", "chub_wrong"],
                          cwd=workdir, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "refused the token (401)" in done.stderr
