"""The private PostgreSQL cluster starts, serves asyncpg on loopback only, and stops."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import asyncpg
import pytest

from .pgcluster import SUPERUSER, PostgresCluster, find_postgres_bindir


def _require_postgres() -> None:
    if find_postgres_bindir() is None:
        # CI must provide PostgreSQL; only a developer machine may skip.
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not found but CI is set: install Debian's postgresql package")
        pytest.skip("PostgreSQL not installed (not CI)")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same as postgres itself does, so lingering TIME_WAIT connections
        # from the closed client don't count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_cluster_serves_asyncpg_on_loopback_and_stops(tmp_path: Path) -> None:
    _require_postgres()
    cluster = PostgresCluster(tmp_path)
    cluster.start()
    try:
        port = cluster.port
        url = cluster.create_database("smoke")
        assert url == f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{port}/smoke"
        assert cluster.dsn("smoke") == f"postgresql://{SUPERUSER}@127.0.0.1:{port}/smoke"

        conn = await asyncpg.connect(cluster.dsn("smoke"))
        try:
            assert (await conn.fetchval("select version()")).startswith("PostgreSQL ")
            assert await conn.fetchval("show listen_addresses") == "127.0.0.1"
            assert await conn.fetchval("select current_user") == SUPERUSER
            assert await conn.fetchval("show fsync") == "off"
            data_dir = await conn.fetchval("show data_directory")
            assert not data_dir.startswith("/var/lib/postgresql")  # not the system cluster
        finally:
            await conn.close()

        cluster.drop_database("smoke")
        assert not _port_is_free(port)
    finally:
        cluster.stop()

    assert _port_is_free(port)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    cluster.stop()  # idempotent
