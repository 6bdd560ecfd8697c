"""The `commhub` CLI run in this process against a private config: fast enough for many small checks.

`config` is a fixture: import it into a test module (`from support.cli import config`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from commhub import cli


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("COMMHUB_"):
            monkeypatch.delenv(name)
    path = tmp_path / "commhub.toml"
    path.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "cli.db"}"\n'
                    '[logging]\nlevel = "warning"\n', encoding="utf-8")
    yield path
    structlog.reset_defaults()  # cli.main configured logging for the whole process


def run_cli(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, standard output and standard error of `commhub --config CONFIG ARGS…`."""
    code = cli.main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err
