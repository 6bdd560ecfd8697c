"""Typed keys for everything the aiohttp application holds (no module-level singletons)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from commhub.contacts.caller_id import CallerId
from commhub.mail.service import MailService
from commhub.metrics import Metrics
from commhub.push.bus import PushBus
from commhub.push.dispatch import Dispatcher
from commhub.push.hub import Hub
from commhub.settings import Settings
from commhub.store.models import Agent
from commhub.store.call_db import CallDatabase
from commhub.store.mail_db import MailDatabase
from commhub.telephony.ingest import CallDesk
from commhub.telephony.replay import MemoryReplayGuard
from commhub.telephony.sources import Sources
from commhub.web.rate_limit import FailureLimiter

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
CALLER_ID = web.AppKey("caller_id", CallerId)
SOURCES = web.AppKey("sources", Sources)
REPLAY_GUARD = web.AppKey("replay_guard", MemoryReplayGuard)
HUB = web.AppKey("hub", Hub)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
CALL_DESK = web.AppKey("call_desk", CallDesk)
CALL_DATABASE = web.AppKey("call_database", CallDatabase)
MAIL_DATABASE = web.AppKey("mail_database", MailDatabase)
MAIL_SERVICE = web.AppKey("mail_service", MailService)
LIMITER = web.AppKey("limiter", FailureLimiter)
NODE = web.AppKey("node", str)  # this node's name ([cluster] node_name, else host and pid)
METRICS = web.AppKey("metrics", Metrics)
BUS = web.AppKey("bus", PushBus)  # PostgreSQL only
SCHEMA_HEADS = web.AppKey("schema_heads", frozenset)  # the migrations this code expects applied
DRAINING = web.AppKey("draining", asyncio.Event)  # set once shutdown began
IN_FLIGHT = web.AppKey("in_flight", list)  # [requests being answered], for the drain

# Set on every authenticated /api request by the auth middleware.
AGENT = web.RequestKey("agent", Agent)
# How that agent proved itself: "bearer" (API clients) or "cookie" (the browser console, which the
# middleware then holds to same-origin writes).
AUTH = web.RequestKey("auth", str)
