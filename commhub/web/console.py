"""`GET /` and `GET /console/{name}`: the browser agent console's files.

Public: the files hold no data; the page signs in through `POST /api/session` and reads everything
else from the API with its cookie.

Files are read from disk on every request (aiohttp's FileResponse) rather than cached in memory:
they are few and small, an upgrade or a developer replaces them while commhub runs, and FileResponse
answers a browser's If-None-Match / If-Modified-Since with 304 from the file's own mtime and size,
so there is no cache of ours to go stale. `Cache-Control: no-cache` makes browsers ask every time.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from commhub.errors import NotFound

STATIC_DIR = Path(__file__).parent / "static"
# Plain lowercase names with a known type: no directories, no dot-files, nothing executable here.
FILE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*\.(js|css|svg|png|wav|ico|json)")
CONTENT_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "wav": "audio/wav",
    "ico": "image/x-icon",
    "json": "application/json; charset=utf-8",
}
# request.host comes from the client's Host header; only a plain host[:port] may go into the page's
# policy, so a crafted header cannot add directives (`x; script-src *`) to it.
PLAIN_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def page_policy(host: str) -> str:
    """The console page's CSP: its own scripts and styles only (no inline script anywhere), API
    calls and the WebSocket to this host, emails framed from this origin."""
    sockets = f" ws://{host} wss://{host}" if PLAIN_HOST.fullmatch(host) else ""
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'{sockets}; frame-src 'self'; media-src 'self'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


async def index(request: web.Request) -> web.StreamResponse:
    return _file("index.html", "text/html; charset=utf-8",
                 {"Content-Security-Policy": page_policy(request.host), "X-Frame-Options": "DENY"})


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    match = FILE_NAME.fullmatch(name)
    if match is None:
        raise NotFound("no such console file: names are lowercase, without directories, "
                       "ending in .js, .css, .svg, .png, .wav, .ico or .json")
    return _file(name, CONTENT_TYPES[match[1]])


def _file(name: str, content_type: str, headers: dict[str, str] | None = None) -> web.StreamResponse:
    path = STATIC_DIR / name
    # Checked here: FileResponse would answer a missing file with an empty 404, not a JSON one.
    if not path.is_file():
        raise NotFound(f"console file {name} is not installed")
    return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": "no-cache",
                                           **(headers or {})})
