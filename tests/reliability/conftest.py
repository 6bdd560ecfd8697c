"""Shared by the reliability tests that need a mail server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.dovecot import Dovecot, require_dovecot


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """A private Dovecot (fails under CI when it is not installed, skips elsewhere)."""
    require_dovecot()
    server = Dovecot(tmp_path / "imap")
    try:
        server.start()
        yield server
    finally:
        server.close()
