"""`commhub serve [--demo]`."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import ssl

from aiohttp import web

from commhub.app import build_app
from commhub.commands.common import open_database
from commhub.demo.load import demo_token, load_demo
from commhub.errors import ConfigError
from commhub.log import get_logger
from commhub.settings import Settings, SourceSettings
from commhub.web.draining import drain

log = get_logger("commhub.serve")


async def prepare_demo(settings: Settings) -> str:
    async with open_database(settings) as db:
        loaded = await load_demo(db.sessions, settings.phone.default_region)
        token = await demo_token(db.sessions)
    log.info("demo.ready", loaded=loaded)
    return token


# Known to the README so its `curl` line works as printed; used only for a loopback demo without sources.
DEMO_SOURCE_SECRET = "demo-secret"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def with_demo_source(settings: Settings) -> Settings:
    """`serve --demo` with no `[[sources]]`: a generic source named `demo`, so a `curl` can ring a phone."""
    if settings.sources:
        return settings
    secret = DEMO_SOURCE_SECRET if settings.server.host in LOOPBACK else secrets.token_urlsafe(16)
    demo = SourceSettings(name="demo", adapter="generic", secret=secret)
    return settings.model_copy(update={"sources": [demo]})


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context from `[server] tls_cert` / `tls_key`, or None for plain HTTP."""
    server = settings.server
    if server.tls_cert is None or server.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(server.tls_cert, server.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"server.tls_cert / server.tls_key: cannot load the certificate and key: {exc}") from None
    return context


def print_welcome(settings: Settings, token: str | None) -> None:
    base = settings.server.public_url or f"{settings.server.scheme}://{settings.server.host}:{settings.server.port}"
    print(f"commhub is starting on {base}/ — API {base}/api (OpenAPI: {base}/api/openapi.json), "
          f"health {base}/healthz", flush=True)
    if token:
        print(f"demo agent 'anna' (admin, extension 10), token: {token}", flush=True)
        print(f"console: open {base}/ in a browser and sign in with that token", flush=True)
        print(f"try: curl -H 'Authorization: Bearer {token}' '{base}/api/contacts?phone=030%201234567-10'",
              flush=True)
        print(f"listen: commhub listen --url {base} --token {token}", flush=True)
    demo = next((source for source in settings.sources if source.name == "demo"), None)
    if token and demo is not None and demo.secret is not None:
        secret = demo.secret.get_secret_value()
        print(f"ring: curl -d 'event=newCall&callId=demo-1&direction=in&from=4930123456710&to=4930555000&user=10' "
              f"'{base}/hooks/demo?token={secret}'", flush=True)


def serve(settings: Settings, args: argparse.Namespace) -> int:
    token = None
    if args.demo:
        settings = with_demo_source(settings)
        token = asyncio.run(prepare_demo(settings))
    context = tls_context(settings)  # a bad certificate stops the start, before anything listens
    print_welcome(settings, token)
    asyncio.run(run_node(build_app(settings), settings, context))
    return 0


async def run_node(app: web.Application, settings: Settings, context: ssl.SSLContext | None) -> None:
    """Serve until SIGTERM or SIGINT, then drain (web/draining.py) and clean up."""
    server = settings.server
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=server.shutdown_seconds)
    await runner.setup()
    try:
        site = web.TCPSite(runner, server.host, server.port, ssl_context=context)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, stop.set)
        await stop.wait()
        await drain(app, site.stop, server.shutdown_seconds)
    finally:
        await runner.cleanup()
