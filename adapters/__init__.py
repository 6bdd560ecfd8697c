"""Phone-system adapters, one package per vendor.

Each adapter turns its vendor's webhook requests into commhub's own call events; the core never
imports an adapter. The registry below is the one place that names them (empty until the first
adapter lands).
"""

from __future__ import annotations

REGISTRY: dict[str, str] = {}  # adapter name -> "module:spec" import path
