"""The `commhub` command as an admin uses it, run as a real process against a real database file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI_TIMEOUT_S = 60


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "COMMHUB_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
           "COMMHUB_LOGGING__LEVEL": "warning"}
    env.pop("COMMHUB_CONFIG", None)

    def invoke(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "commhub", *args], env=env, cwd=tmp_path, text=True,
                              capture_output=True, timeout=CLI_TIMEOUT_S, input=stdin)
    return invoke


def test_db_upgrade_then_up_to_date(run) -> None:  # type: ignore[no-untyped-def]
    first = run("db", "upgrade")
    assert first.returncode == 0 and "applied 5 migration(s): 0001, 0002, 0003, 0004, 0005" in first.stdout
    assert run("db", "upgrade").stdout.strip() == "database is up to date"


def test_agents_add_prints_a_token_once_and_refuses_twins(run) -> None:  # type: ignore[no-untyped-def]
    added = run("agents", "add", "anna", "--extension", "10", "--extension", "10a", "--role", "admin")
    assert added.returncode == 0
    assert "token (shown once, store it now): chub_" in added.stdout
    twin = run("agents", "add", "anna")
    assert twin.returncode == 2 and "exists already" in twin.stderr
    taken = run("agents", "add", "ben", "--extension", "10")
    assert taken.returncode == 2 and "extension(s) already assigned: 10" in taken.stderr
    listed = run("agents", "list")
    assert "anna" in listed.stdout and "10, 10a" in listed.stdout
    assert "chub_" in run("agents", "token", "anna").stdout
    assert run("agents", "token", "nobody").returncode == 2


def test_import_find_and_duplicates(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sheet = tmp_path / "kunden.csv"
    sheet.write_bytes(
        "Firma;Vorname;Nachname;Telefon;Mobil;E-Mail;Klasse;Kundennummer\r\n"
        "Müller Haustechnik GmbH;Jürgen;Müller;030 1234567-10;0171 2345678;j.mueller@mh.example;A;K-1\r\n"
        "Müller Haustechnik GmbH;Sabine;Weiß;030 1234567-22;;s.weiss@mh.example;B;K-2\r\n"
        ";;;;;;;K-9\r\n"  # a customer number alone identifies nobody: rejected
        ";;;;;;;\r\n"  # Excel writes empty rows like this: skipped
        "Schön OHG;Thomas;Maier;0711 987654;;;C;K-3\r\n"
        "Schön OHG;Thomas;Meier;0711 987654;;;C;K-4\r\n".encode("cp1252"))
    imported = run("contacts", "import", str(sheet))
    assert imported.returncode == 0, imported.stderr
    assert "4 created, 0 updated, 0 duplicate, 1 rejected" in imported.stdout
    assert "rejected line 4:" in imported.stdout

    again = run("contacts", "import", str(sheet))
    assert "0 created, 0 updated, 4 duplicate, 1 rejected" in again.stdout

    found = run("contacts", "find", "+49 (0)30 1234567 10")
    assert found.returncode == 0
    assert "Jürgen Müller — Müller Haustechnik GmbH — class A" in found.stdout
    assert "+49 30 123456710" in found.stdout

    shared = run("contacts", "find", "0711 987654")
    assert "2 files match; ambiguous" in shared.stdout

    unknown = run("contacts", "find", "+1 212 555 0100")
    assert unknown.returncode == 3 and "no customer file has this number" in unknown.stdout and "US" in unknown.stdout

    duplicates = run("contacts", "duplicates")
    assert "Thomas Maier ⟷" in duplicates.stdout and "Thomas Meier" in duplicates.stdout
    assert "same number +49711987654" in duplicates.stdout


def test_unreadable_file_and_bad_config_are_clear(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = run("contacts", "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1 and "nope.csv: cannot read" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'x'\n")
    broken = run("--config", str(bad), "db", "upgrade")
    assert broken.returncode == 2 and "bad.toml: server.port" in broken.stderr
