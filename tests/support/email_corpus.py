"""The Python standard library's email test corpus (`test/test_email/data/msg_*.txt`), for the mail tests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

MISSING = "the standard library's email test corpus (package test.test_email) is missing from this Python"


def corpus_files() -> list[Path]:
    """The corpus files, or [] where this Python lacks them (Debian ships them as libpython3.x-testsuite)."""
    try:  # located without importing it: the test package's own imports are none of our business
        spec = importlib.util.find_spec("test.test_email")
    except ModuleNotFoundError:
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(Path(next(iter(spec.submodule_search_locations)), "data").glob("msg_*.txt"))


def require_corpus() -> list[Path]:
    """The corpus files; without them the test fails under CI and skips elsewhere."""
    files = corpus_files()
    if not files:
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING + " (not CI)")
    return files
