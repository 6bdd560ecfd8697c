"""Finds adapters without importing them by name: the `commhub.adapters` entry-point group.

A source's `adapter` is an entry-point name (`sipgate`) or, for an adapter that lives outside this
package, an import path `package.module:SPEC`. Adding a vendor means adding one adapter and one line
in pyproject.toml; nothing in the core changes.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from commhub.errors import ConfigError
from commhub.telephony.contract import AdapterSpec

GROUP = "commhub.adapters"


@cache
def available() -> dict[str, str]:
    """Adapter name -> import path, of every installed adapter."""
    return {point.name: point.value for point in entry_points(group=GROUP)}


def load_adapter(name: str) -> AdapterSpec:
    path = available().get(name, name if ":" in name else None)
    if path is None:
        known = ", ".join(sorted(available())) or "none installed"
        raise ConfigError(f"unknown adapter {name!r} (known: {known})")
    module_name, _, attribute = path.partition(":")
    try:
        spec = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"adapter {name!r} cannot be loaded from {path}: {exc}") from None
    if not isinstance(spec, AdapterSpec):
        raise ConfigError(f"adapter {name!r}: {path} is not an AdapterSpec")
    return spec
