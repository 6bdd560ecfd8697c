"""Failed-credential limits: what a flood of wrong tokens and forged webhooks from one address costs
the good traffic from another.

A real `commhub serve` (SQLite). The good client (127.0.0.1) sends requests one after another and
times each; in the flood rounds, flooders at 127.0.0.2 send wrong agent tokens or forged webhooks as
fast as they can, several at a time. Each round runs on a server with the default failure limit (10
failures, then 429) and on one with the largest limit the configuration takes (10,000), so the
figures say what the limit buys. The floor is the same good requests with no flood, in the same run.

    .venv/bin/python bench/access.py [--requests 2000] [--flooders 4] [--docs docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.commhub_process import SOURCE, SOURCE_SECRET, CommhubProcess  # noqa: E402
from sections import percentile, publish  # noqa: E402

HEADING = "## Failed-credential limits: good traffic under a flood (bench/access.py)"
WRONG_TOKEN = "chub_" + "x" * 43
Good = Callable[[aiohttp.ClientSession, int], Awaitable[int]]


async def good_rounds(server: CommhubProcess, token: str, requests: int, flooders: int) -> dict[str, Any]:
    api = f"{server.base}/api/me"
    hook = f"{server.base}/hooks/{SOURCE}"

    async def read_me(http: aiohttp.ClientSession, n: int) -> int:
        async with http.get(api, headers={"Authorization": f"Bearer {token}"}) as response:
            await response.read()
            return response.status

    async def post_event(http: aiohttp.ClientSession, n: int) -> int:
        body = {"event": "ringing", "call_id": f"good-{time.time_ns()}-{n}", "direction": "in",
                "from": "+4930555000", "targets": ["99"]}
        async with http.post(hook, params={"token": SOURCE_SECRET}, json=body) as response:
            await response.read()
            return response.status

    rounds = {}
    for name, good, bad in (("API", read_me, ("GET", api, {"Authorization": f"Bearer {WRONG_TOKEN}"})),
                            ("webhook", post_event, ("POST", hook + "?token=not-the-secret", {}))):
        rounds[name] = {"floor": await timed(good, requests, None, flooders),
                        "flood": await timed(good, requests, bad, flooders)}
    return rounds


def flood_process(request: tuple[str, str, dict[str, str]], flooders: int, stop: Any, counts: Any) -> None:
    """The flooders, in a process of their own: their work must not delay the good client's loop."""
    method, url, headers = request

    async def flood() -> None:
        statuses: Counter[int] = Counter()
        started = time.perf_counter()
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), limit=flooders)
        async with aiohttp.ClientSession(connector=connector) as http:
            async def one_flooder() -> None:
                while not stop.is_set():
                    async with http.request(method, url, headers=headers, json={"event": "ringing"}) as response:
                        await response.read()
                        statuses[response.status] += 1
            await asyncio.gather(*(one_flooder() for _ in range(flooders)))
        counts.put({"statuses": dict(statuses), "seconds": time.perf_counter() - started})

    asyncio.run(flood())


async def timed(good: Good, requests: int, bad: tuple[str, str, dict[str, str]] | None,
                flooders: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    stop, counts = context.Event(), context.Queue()
    process = context.Process(target=flood_process, args=(bad, flooders, stop, counts)) if bad else None
    if process is not None:
        process.start()
        await asyncio.sleep(1.0)  # the flood is under way before the first good request
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http:
        started = time.perf_counter()
        for n in range(requests):
            began = time.perf_counter()
            status = await good(http, n)
            latencies.append((time.perf_counter() - began) * 1000)
            assert status == 200, status
        seconds = time.perf_counter() - started
    flood: dict[str, Any] = {"statuses": {}, "seconds": 0.0}
    if process is not None:
        stop.set()
        flood = await asyncio.to_thread(counts.get, True, 60)
        process.join(timeout=30)
    return {"ms": latencies, "seconds": seconds, "flood": flood}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"requests": args.requests, "flooders": args.flooders, "limits": {}}
    # The default, and the largest limit the configuration takes (a flood reaches it within seconds).
    for label, limit in (("10 (default)", 10), ("10,000", 10_000)):
        with tempfile.TemporaryDirectory(prefix="commhub-bench-access-") as workdir:
            server = CommhubProcess(Path(workdir), extra_config=f"[access]\nfailure_limit = {limit}\n")
            token = server.add_agent("anna", "10")
            server.start()
            try:
                result["limits"][label] = await good_rounds(server, token, args.requests, args.flooders)
            finally:
                server.stop()
    return result


def row(name: str, values: dict[str, Any], floor: dict[str, Any]) -> str:
    ms = values["ms"]
    statuses = values["flood"]["statuses"]
    sent = sum(statuses.values())
    mix = ", ".join(f"{count} × {status}" for status, count in sorted(statuses.items())) or "–"
    rate = f"{sent / values['flood']['seconds']:.0f}/s" if sent else "–"
    return (f"| {name} | {statistics.median(ms):.2f} | {percentile(ms, 0.99):.2f} | "
            f"{statistics.median(ms) / statistics.median(floor['ms']):.2f} | "
            f"{percentile(ms, 0.99) / percentile(floor['ms'], 0.99):.2f} | {rate} | {mix} |")


def report(result: dict[str, Any]) -> str:
    lines = [f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `bench/access.py`: a real `commhub serve` "
             f"on SQLite; {result['requests']} good requests per round, one after another, from 127.0.0.1; "
             f"in the flood rounds {result['flooders']} flooders at 127.0.0.2 send wrong tokens (`GET /api/me`) "
             "or forged webhooks (`POST /hooks/pbx` with a wrong `?token=`) back to back.", "",
             "| good requests | p50 ms | p99 ms | p50 ÷ floor | p99 ÷ floor | flood rate | flood answered |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for label, rounds in result["limits"].items():
        for name, pair in rounds.items():
            what = "agent token" if name == "API" else "signed webhook"
            lines.append(row(f"{name} ({what}), no flood (floor); limit {label}", pair["floor"], pair["floor"]))
            lines.append(row(f"{name}, flood; limit {label}", pair["flood"], pair["floor"]))
    lines += ["", "With the default limit the flooding address is refused after its tenth failure, and every "
              "later request of it is answered 429 before any database or signature work. With a limit of "
              "10,000 the first 10,000 wrong tokens are each looked up in the database and the first 10,000 "
              "forged webhooks each verified. The ratios compare each flood round with the floor measured "
              "just before it on the same server; the good client, the flooders and commhub share the "
              "machine's two cores, so part of every flood round's cost is the flooders' own CPU."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--flooders", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--docs", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    publish("access", report(result), result, out=args.out, docs=args.docs, heading=HEADING)


if __name__ == "__main__":
    main()
