"""Shared by the reliability tests: a mail server, and a migrated database to copy for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.dovecot import Dovecot, running_dovecot
from support.migrated import migrated_template


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """A private Dovecot (fails under CI when it is not installed, skips elsewhere)."""
    yield from running_dovecot(tmp_path / "imap")


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once per run; `support.migrated.fresh_copy` gives a test its own copy."""
    return migrated_template(tmp_path_factory.mktemp("template"))
