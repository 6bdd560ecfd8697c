"""Every fixture of every adapter: verified with its source's secret, parsed into the expected events.

The expectation sits beside each fixture (`<name>.json`); see tests/support/http_fixture.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.http_fixture import (
    ADAPTERS_DIR,
    adapter_fixtures,
    event_json,
    read_fixture,
    source_context,
)

from commhub.errors import CommhubError
from commhub.telephony.contract import AdapterSpec, IgnoredEvent, Reply
from commhub.telephony.registry import available, load_adapter

ADAPTERS = sorted(available())
CASES = [(name, path) for name in ADAPTERS for path in adapter_fixtures(name)]


def test_every_adapter_folder_is_registered_and_documented() -> None:
    folders = sorted(p.name for p in ADAPTERS_DIR.iterdir() if (p / "__init__.py").exists())
    assert folders == ADAPTERS
    for name in ADAPTERS:
        spec = load_adapter(name)
        assert isinstance(spec, AdapterSpec) and spec.name == name
        readme = (ADAPTERS_DIR / name / "README.md").read_text("utf-8")
        assert "fixtures" in readme.lower() and "source" in readme.lower(), f"{name}: README names no sources"
        assert adapter_fixtures(name), f"{name} has no fixtures"
        for option in spec.options:
            assert option in readme, f"{name}: option {option!r} is not documented in its README"


@pytest.mark.parametrize(("adapter", "path"), CASES, ids=[f"{a}/{p.stem}" for a, p in CASES])
def test_fixture_gives_the_expected_outcome(adapter: str, path: Path) -> None:
    spec = load_adapter(adapter)
    fixture = read_fixture(path)
    expected = fixture.expected()
    source = source_context(adapter)
    request = fixture.request()
    try:
        spec.verify(request, source)
        events = spec.parse(request, source)
    except IgnoredEvent:
        assert expected.get("ignored") is True, f"{path.name} was ignored but should give {expected}"
        return
    except CommhubError as exc:
        assert "error" in expected, f"{path.name} failed: {exc.message}"
        assert exc.status == expected["error"]["status"], exc.message
        if "field" in expected["error"]:
            assert exc.details == {"field": expected["error"]["field"]}
        return
    assert "events" in expected, f"{path.name} parsed, but {expected} was expected"
    assert [event_json(event) for event in events] == expected["events"]
    reply = spec.reply(request, events, source)
    assert isinstance(reply, Reply) and 200 <= reply.status < 300
    if "reply" in expected:
        assert {"content_type": reply.content_type, "body": reply.body} == expected["reply"]
