"""The configured phone-system sources (`[[sources]]`), each with its adapter, loaded once at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from commhub.errors import ConfigError, NotFound
from commhub.settings import Settings, SourceSettings
from commhub.telephony.contract import AdapterSpec, ReplayGuard, SourceContext
from commhub.telephony.registry import load_adapter


# Options every source understands, whatever its adapter.
CORE_OPTIONS = {
    "fallback_agents": "agent names that get the calls whose targets map to no agent (default: every active agent)",
    "language": "language of the caller-name lookup's fixed words, de or en (default de)",
}


@dataclass(frozen=True)
class Source:
    name: str
    spec: AdapterSpec
    secret: str
    options: dict[str, Any] = field(default_factory=dict)

    def context(self, base_url: str, replay: ReplayGuard) -> SourceContext:
        hook_url = f"{base_url}/hooks/{quote(self.name)}"
        if self.spec.token_in_hook_url:
            hook_url += f"?token={quote(self.secret, safe='')}"
        return SourceContext(name=self.name, secret=self.secret, options=self.options, hook_url=hook_url,
                             replay=replay)


class Sources:
    def __init__(self, configured: list[SourceSettings]) -> None:
        self._by_name = {item.name: self._load(item) for item in configured}

    @staticmethod
    def _load(item: SourceSettings) -> Source:
        spec = load_adapter(item.adapter)
        secret = item.secret.get_secret_value() if item.secret else ""
        if len(secret) < 8:
            raise ConfigError(f"sources: {item.name}: secret: set a secret of at least 8 characters; "
                              "commhub accepts no unverified call events")
        known = {**CORE_OPTIONS, **spec.options}
        unknown = sorted(set(item.options) - set(known))
        if unknown:
            raise ConfigError(f"sources: {item.name}: options: unknown for adapter {spec.name}: {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(known))})")
        fallback = item.options.get("fallback_agents", [])
        if not isinstance(fallback, list) or not all(isinstance(name, str) for name in fallback):
            raise ConfigError(f"sources: {item.name}: options.fallback_agents: a list of agent names")
        return Source(item.name, spec, secret, dict(item.options))

    @classmethod
    def from_settings(cls, settings: Settings) -> Sources:
        return cls(settings.sources)

    def get(self, name: str) -> Source:
        source = self._by_name.get(name)
        if source is None:
            raise NotFound(f"no source named {name!r} is configured")
        return source

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)
