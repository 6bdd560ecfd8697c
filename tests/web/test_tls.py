"""`[server] tls_cert` / `tls_key`: commhub serves HTTPS and wss:// itself, with HSTS and Secure cookies."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets.sync.client

from commhub.errors import ConfigError
from commhub.settings import load_settings
from support.certs import CertFiles, make_localhost_cert
from support.commhub_process import clean_env, free_port


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return make_localhost_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def https_server(certs: CertFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, ssl.SSLContext]]:
    workdir = tmp_path_factory.mktemp("tls")
    port = free_port()
    config = workdir / "commhub.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\ntls_cert = "{certs.cert}"\n'
                      f'tls_key = "{certs.key}"\n\n[database]\nurl = "sqlite+aiosqlite:///{workdir / "c.db"}"\n'
                      '[logging]\nlevel = "warning"\n', encoding="utf-8")
    command = [sys.executable, "-m", "commhub", "--config", str(config)]
    added = subprocess.run([*command, "agents", "add", "anna", "--extension", "10"], env=clean_env(),
                           capture_output=True, text=True, timeout=60, check=True)
    token = added.stdout.split("store it now): ")[1].strip()
    context = ssl.create_default_context(cafile=str(certs.cert))
    log = (workdir / "serve.log").open("w")
    process = subprocess.Popen([*command, "serve"], env=clean_env(), stdout=log, stderr=subprocess.STDOUT)
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", context=context, timeout=2):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (workdir / "serve.log").read_text()
                time.sleep(0.1)
        yield base, token, context
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_https_is_served_with_hsts_and_plain_http_is_not(https_server: tuple[str, str, ssl.SSLContext]) -> None:
    base, token, context = https_server
    request = urllib.request.Request(base + "/api/me", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, context=context, timeout=10) as reply:
        assert json.loads(reply.read())["name"] == "anna"
        assert reply.headers["Strict-Transport-Security"] == "max-age=31536000"
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # no cleartext fallback on the same port
        urllib.request.urlopen(base.replace("https", "http") + "/healthz", timeout=5)


def test_the_console_cookie_is_secure_and_the_socket_speaks_wss(https_server: tuple[str, str, ssl.SSLContext]) -> None:
    base, token, context = https_server
    request = urllib.request.Request(base + "/api/session", data=json.dumps({"token": token}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, context=context, timeout=10) as reply:
        cookie = reply.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    url = base.replace("https", "wss") + "/ws"
    with websockets.sync.client.connect(url, ssl=context, additional_headers={"Authorization": f"Bearer {token}"},
                                        open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10))["type"] == "hello"


def test_a_half_or_missing_tls_setting_is_named_at_start(certs: CertFiles, tmp_path: Path) -> None:
    half = tmp_path / "half.toml"
    half.write_text(f'[server]\ntls_cert = "{certs.cert}"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="server: tls_cert and tls_key go together"):
        load_settings(half, environ={})
    missing = tmp_path / "missing.toml"
    missing.write_text(f'[server]\ntls_cert = "{certs.cert}"\ntls_key = "{tmp_path / "nope.key"}"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="tls_key: no such file"):
        load_settings(missing, environ={})
