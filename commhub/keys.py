"""Typed keys for everything the aiohttp application holds (no module-level singletons)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commhub.contacts.caller_id import CallerId
from commhub.settings import Settings
from commhub.store.models import Agent

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
CALLER_ID = web.AppKey("caller_id", CallerId)

# Set on every authenticated /api request by the auth middleware.
AGENT = web.RequestKey("agent", Agent)
