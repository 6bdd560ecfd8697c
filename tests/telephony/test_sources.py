"""A source that cannot work stops the start with a message naming it, not the first call."""

from __future__ import annotations

from typing import Any

import pytest

from commhub.errors import ConfigError
from commhub.settings import SourceSettings
from commhub.telephony.replay import MemoryReplayGuard
from commhub.telephony.sources import Sources


def source(**fields: Any) -> SourceSettings:
    return SourceSettings.model_validate({"name": "pbx", "adapter": "generic", "secret": "long-enough", **fields})


@pytest.mark.parametrize(("fields", "message"), [
    ({"adapter": "fritzbox"}, "unknown adapter 'fritzbox' (known: asterisk, freeswitch, generic, placetel"),
    ({"secret": None}, "sources: pbx: secret: set a secret of at least 8 characters"),
    ({"secret": "short"}, "sources: pbx: secret: set a secret of at least 8 characters"),
    ({"options": {"fallback_group": "x"}}, "options: unknown for adapter generic: fallback_group"),
    ({"options": {"fallback_agents": "anna"}}, "options.fallback_agents: a list of agent names"),
    ({"adapter": "os:path"}, "is not an AdapterSpec"),
])
def test_unusable_sources_are_refused_with_the_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Sources([source(**fields)])
    assert message in refused.value.message


def test_every_installed_adapter_can_back_a_source() -> None:
    names = ["generic", "sipgate", "placetel", "twilio", "threecx", "asterisk", "freeswitch"]
    sources = Sources([source(name=name, adapter=name) for name in names])
    assert sources.names() == sorted(names)
    assert sources.get("twilio").spec.name == "twilio"


def test_the_hook_url_carries_the_secret_only_where_the_vendor_cannot_sign() -> None:
    sources = Sources([source(name="sipgate", adapter="sipgate", secret="token-1234"),
                       source(name="twilio", adapter="twilio", secret="auth-token-5678")])
    guard = MemoryReplayGuard()
    assert sources.get("sipgate").context("https://crm.example", guard).hook_url == \
        "https://crm.example/hooks/sipgate?token=token-1234"
    assert sources.get("twilio").context("https://crm.example", guard).hook_url == "https://crm.example/hooks/twilio"
