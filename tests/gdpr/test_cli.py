"""`commhub gdpr export|erase` and `commhub audit` as an admin runs them, in a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

CSV = "Vorname;Nachname;Firma;Telefon geschäftlich;E-Mail-Adresse\nOtto;Brandt;Brandt Bau GmbH;030 9876543;otto@brandt-bau.de\n"


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "COMMHUB_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
           "COMMHUB_LOGGING__LEVEL": "warning"}
    env.pop("COMMHUB_CONFIG", None)

    def invoke(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "commhub", *args], env=env, cwd=tmp_path, text=True,
                              capture_output=True, timeout=60, input=stdin)
    return invoke


def test_export_then_erase_from_the_command_line_is_audited(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "kunden.csv").write_text(CSV, encoding="utf-8")
    assert run("contacts", "import", "kunden.csv").returncode == 0

    exported = run("gdpr", "export", "1", "--out", "otto.zip")
    assert exported.returncode == 0, exported.stderr
    assert "exported contact 1 to otto.zip" in exported.stdout
    with zipfile.ZipFile(tmp_path / "otto.zip") as archive:
        assert json.loads(archive.read("contact.json"))["last_name"] == "Brandt"
    again = run("gdpr", "export", "1", "--out", "otto.zip")
    assert again.returncode == 1 and "exists" in again.stderr  # an earlier export is never overwritten silently

    refused = run("gdpr", "erase", "1")  # no terminal to confirm on
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert run("contacts", "find", "030 9876543").stdout.count("Brandt") >= 1

    erased = run("gdpr", "erase", "1", "--yes")
    assert erased.returncode == 0 and "erased contact 1 (numbers: 1, addresses: 1" in erased.stdout
    assert "Brandt" not in run("contacts", "find", "030 9876543").stdout
    missing = run("gdpr", "erase", "1", "--yes")
    assert missing.returncode != 0 and "1" in missing.stderr

    trail = [json.loads(line) for line in run("audit", "--contact", "1", "--json").stdout.splitlines()]
    assert [event["action"] for event in trail] == ["erase", "export"]
    assert all(event["actor"].startswith("cli:") and event["via"] == "cli" for event in trail)
    assert "brandt" not in json.dumps(trail).lower() and "9876543" not in json.dumps(trail)
    table = run("audit", "--action", "erase").stdout
    assert "erase" in table and "contact:1" in table and "numbers=1" in table

    # The old CSV imported again: the erased person does not come back, and the admin is told why.
    (tmp_path / "mehr.csv").write_text(CSV + "Paula;Schulz;;089 445566;paula@schulz.de\n", encoding="utf-8")
    reimport = run("contacts", "import", "mehr.csv")
    assert "1 created" in reimport.stdout and "1 rejected" in reimport.stdout, reimport.stdout
    assert "line 2" in reimport.stdout and "erased on request" in reimport.stdout
    assert "Brandt" not in run("contacts", "find", "030 9876543").stdout
