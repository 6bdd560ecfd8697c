"""Debian's Chromium for the console tests, driven headless by Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The Debian package's real binary; /usr/bin/chromium is a shell wrapper around it.
CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


def find_chromium() -> str | None:
    for candidate in CANDIDATES:
        path = candidate if Path(candidate).is_absolute() and Path(candidate).exists() else shutil.which(candidate)
        if path:
            return str(path)
    return None


def require_chromium() -> str:
    """The browser's path; without it the test fails under CI and skips elsewhere."""
    path = find_chromium()
    if path is None:
        message = "Chromium is not installed (Debian package chromium); the console tests need it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + " (not CI)")
    return path
