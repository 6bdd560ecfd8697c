"""The cluster suite: several `commhub serve` processes on one private PostgreSQL (the run's
`pg_cluster`, which fails under CI when PostgreSQL is missing) and a private Dovecot (`require_dovecot`:
the same under CI).

One cluster of two nodes, with one mailbox, serves the tests that leave the nodes running
(`shared_cluster`); a test that kills or stops a node gets a cluster of its own (`make_cluster`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from support.cluster import CommhubCluster, mailbox_of
from support.dovecot import Dovecot, running_dovecot
from support.pgcluster import PostgresCluster


@pytest.fixture(scope="package")
def shared_dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    yield from running_dovecot(tmp_path_factory.mktemp("shared-imap"))


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """A Dovecot of this test's own."""
    yield from running_dovecot(tmp_path / "imap")


@pytest.fixture(scope="package")
def shared_cluster(pg_cluster: PostgresCluster, shared_dovecot: Dovecot,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[CommhubCluster]:
    """Two nodes on one database, both configured with the shared Dovecot's mailbox."""
    with CommhubCluster(tmp_path_factory.mktemp("shared-cluster"), nodes=2, pg=pg_cluster,
                        mailbox=mailbox_of(shared_dovecot)) as cluster:
        yield cluster


@pytest.fixture
def cluster(shared_cluster: CommhubCluster) -> CommhubCluster:
    """The shared cluster, every node running (one an earlier test left down is started again)."""
    down = [node for node in shared_cluster.nodes if not node.running]
    if down:
        CommhubCluster.start_nodes(down)
    return shared_cluster


@pytest.fixture
def make_cluster(pg_cluster: PostgresCluster, tmp_path: Path) -> Iterator[Callable[..., CommhubCluster]]:
    """Start a cluster of this test's own: make_cluster(nodes=3, mailbox=…); closed after the test."""
    made: list[CommhubCluster] = []

    def make(**options: object) -> CommhubCluster:
        cluster = CommhubCluster(tmp_path / f"cluster-{len(made) + 1}", pg=pg_cluster,
                                 **options)  # type: ignore[arg-type]
        made.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """The agents' desks and the phone system: their own connection pool."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        yield session
