"""A real `commhub serve` in a subprocess on loopback, with its own config and SQLite file.

The console tests and the console benchmark talk to it as a browser and a phone system would: over
HTTP and the WebSocket, never in-process. It can be stopped and started again on the same port and
database, as an admin restarts the daemon.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 60
SOURCE = "pbx"
SOURCE_SECRET = "console-test-secret-0123456789"


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without COMMHUB_* settings: a child reads only the config it is given."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("COMMHUB_")}
    return env | overrides


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class CommhubProcess:
    def __init__(self, workdir: Path, *, extra_config: str = "") -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "commhub.toml"
        self.config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {self.port}\n\n'
            f'[database]\nurl = "sqlite+aiosqlite:///{workdir / "commhub.db"}"\n\n'
            f'[logging]\nlevel = "warning"\n\n'
            f'[[sources]]\nname = "{SOURCE}"\nadapter = "generic"\nsecret = "{SOURCE_SECRET}"\n\n'
            + extra_config, encoding="utf-8")
        self.process: subprocess.Popen[str] | None = None
        self.log = workdir / "serve.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "commhub", *args, "--config", str(self.config)],
                              cwd=self.workdir, env=clean_env(), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"commhub {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def add_agent(self, name: str, extension: str, *, role: str = "agent") -> str:
        printed = self.cli("agents", "add", name, "--extension", extension, "--role", role)
        found = re.search(r"(chub_\S+)", printed)
        assert found, printed
        return found.group(1)

    def start(self) -> None:
        with self.log.open("a", encoding="utf-8") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "commhub", "serve", "--config", str(self.config)],
                                            cwd=self.workdir, env=clean_env(), stdout=log, stderr=subprocess.STDOUT,
                                            text=True)
        wait_until_healthy(self.process, self.base, lambda: self.log.read_text())

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def request(self, method: str, path: str, *, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=15) as reply:
                raw = reply.read()
                return reply.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    def call_event(self, event: str, call_id: str, *, caller: str = "", targets: tuple[str, ...] = ("10",),
                   **fields: Any) -> float:
        """Post one event of commhub's generic format, as a PBX does; returns the wall time of the POST."""
        body = {"event": event, "call_id": call_id, "direction": "in", "from": caller, "to": "+4930555000",
                "targets": list(targets), **fields}
        started = time.time()
        status, reply = self.request("POST", f"/hooks/{SOURCE}?token={SOURCE_SECRET}", body=body)
        assert status == 200, reply
        return started



def wait_until_healthy(process: subprocess.Popen[str], base: str, output: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"commhub serve exited with {process.returncode}: {output()}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("commhub serve did not answer /healthz")


def start_demo(workdir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    """`commhub serve --demo` as the README's run command starts it: the process and the token it printed.
    Stop it with terminate(); what it prints after the token is read (and dropped) by a thread."""
    env = clean_env(COMMHUB_SERVER__PORT=str(port), COMMHUB_LOGGING__LEVEL="warning")
    process = subprocess.Popen([sys.executable, "-m", "commhub", "serve", "--demo"], cwd=workdir, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    token = None
    while token is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"serve --demo exited with {process.wait()}")
        if found := re.search(r"token: (chub_\S+)", line):
            token = found.group(1)
    if token is None:
        process.kill()
        raise AssertionError("no demo token printed")
    # Keep reading what the server prints, so a full pipe can never stall it.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    wait_until_healthy(process, f"http://127.0.0.1:{port}")
    return process, token
