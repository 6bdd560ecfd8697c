"""A private, throw-away PostgreSQL cluster for the test suite.

The cluster lives in its own data directory, listens on 127.0.0.1 only, on a
free port, with its Unix socket in a private directory. It never touches the
machine's own PostgreSQL service (no pg_ctlcluster, no /var/run/postgresql,
no system data or config).
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "commhub_test"
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections
_OWNER = "postgres"  # system user created by Debian's postgresql package
_REQUIRED = ("initdb", "pg_ctl", "postgres", "createdb", "dropdb")
# Database names go unquoted into URLs, so only allow plain identifiers.
_DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# sun_path is 108 bytes; leave room for "/.s.PGSQL.NNNNN".
_MAX_SOCKET_DIR = 90


def _has_server_binaries(bindir: Path) -> bool:
    return all((bindir / name).is_file() for name in ("initdb", "pg_ctl"))


def find_postgres_bindir() -> Path | None:
    """Locate the PostgreSQL server binaries, or return None if not installed."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True, text=True, timeout=10, check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            out = None
        # Debian's libpq-dev pg_config reports a bindir without a server in it.
        if out is not None and out.returncode == 0:
            bindir = Path(out.stdout.strip())
            if _has_server_binaries(bindir):
                return bindir

    def version_key(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", path.parent.name))

    debian = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if _has_server_binaries(p)),
        key=version_key,
    )
    if debian:
        return debian[-1]

    initdb = shutil.which("initdb")
    if initdb:
        # initdb is often a symlink (e.g. /usr/local/bin/initdb); pg_ctl and
        # friends sit next to the real file, not next to the link.
        for bindir in (Path(initdb).parent, Path(initdb).resolve().parent):
            if _has_server_binaries(bindir):
                return bindir
    return None


def _free_port() -> int:
    # The kernel picks a free port; there is a small race until postgres binds
    # it, which start() handles by retrying on "Address already in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


class PostgresCluster:
    """A private PostgreSQL server in a temp dir on a free loopback port."""

    def __init__(self, base_dir: Path) -> None:
        self._base_dir = Path(base_dir)
        self._port: int | None = None
        self._dir: Path | None = None  # cluster dir: data/, sock/, server.log
        self._own_tmp: Path | None = None  # fallback dir we created, removed on stop
        self._bindir: Path | None = None
        self._owner: pwd.struct_passwd | None = None  # set when running as root
        # PG* variables (PGHOST, PGPORT, PGOPTIONS, ...) could point the
        # client tools at another server, so never pass them on.
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    # -- public API ---------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("PostgresCluster is not started")
        return self._port

    def dsn(self, name: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        if self._port is not None:
            raise RuntimeError("PostgresCluster is already started")
        self._bindir = self._check_bindir()
        self._owner = self._check_owner() if os.geteuid() == 0 else None
        self._dir = self._make_cluster_dir()
        data, log = self._dir / "data", self._dir / "server.log"

        init = self._run(
            [str(self._bindir / "initdb"), "-D", str(data), "-U", SUPERUSER,
             "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            timeout=120, as_owner=True,
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {init.returncode}):\n{init.stdout}{init.stderr}")

        for _attempt in range(3):
            port = _free_port()
            options = [
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={port}",
                "-c", f"unix_socket_directories={self._dir / 'sock'}",
                "-c", "max_connections=200",
                # Durability is pointless for a throw-away test cluster.
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            ]
            # pg_ctl hands -o to /bin/sh, hence the shell quoting.
            argv = [str(self._bindir / "pg_ctl"), "-D", str(data), "-l", str(log),
                    "-w", "-t", str(START_TIMEOUT), "-o", shlex.join(options), "start"]
            try:
                result = self._run(argv, timeout=START_TIMEOUT + 15, as_owner=True)
                output, ok = result.stdout + result.stderr, result.returncode == 0
            except subprocess.TimeoutExpired:
                output, ok = "<pg_ctl itself timed out>", False
            if ok:
                self._port = port
                # Safety net: don't leave a postmaster behind if a test run dies.
                atexit.register(self.stop)
                return
            # pg_ctl may give up while the server is still coming up.
            self._pg_ctl_stop("immediate", check=False)
            if "Address already in use" not in _tail(log, 5):
                break
        raise RuntimeError(
            f"PostgreSQL failed to start or was not ready within {START_TIMEOUT} s.\n"
            f"pg_ctl output:\n{output}\nserver log tail ({log}):\n{_tail(log)}"
        )

    def stop(self) -> None:
        if self._port is None:
            return
        self._pg_ctl_stop("fast", check=True)
        self._port = None
        atexit.unregister(self.stop)
        if self._own_tmp is not None:
            # Only our own mkdtemp() fallback; never anything under base_dir.
            shutil.rmtree(self._own_tmp, ignore_errors=True)
            self._own_tmp = None

    def create_database(self, name: str) -> str:
        self._client("createdb", self._check_name(name))
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def drop_database(self, name: str) -> None:
        # --force (PostgreSQL >= 13) ends connections a test's pool left open.
        self._client("dropdb", "--if-exists", "--force", self._check_name(name))

    # -- helpers ------------------------------------------------------------

    @staticmethod
    def _check_name(name: str) -> str:
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"invalid database name {name!r}: use [A-Za-z_][A-Za-z0-9_]*")
        return name

    @staticmethod
    def _check_bindir() -> Path:
        bindir = find_postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries not found: install Debian's postgresql package")
        missing = [name for name in _REQUIRED if not (bindir / name).is_file()]
        if missing:
            raise RuntimeError(f"PostgreSQL binaries missing from {bindir}: {', '.join(missing)}")
        return bindir

    @staticmethod
    def _check_owner() -> pwd.struct_passwd:
        # initdb and postgres refuse to run as root.
        try:
            owner = pwd.getpwnam(_OWNER)
        except KeyError:
            raise RuntimeError(
                f"running as root, but there is no {_OWNER!r} system user to run initdb as: "
                "install Debian's postgresql package or run the tests as a non-root user"
            ) from None
        if not any(shutil.which(tool) for tool in ("runuser", "setpriv", "su")):
            raise RuntimeError(
                f"running as root, but none of runuser/setpriv/su is available to switch to {_OWNER!r}"
            )
        return owner

    def _as_owner(self, argv: list[str]) -> list[str]:
        if self._owner is None:
            return argv
        if runuser := shutil.which("runuser"):
            return [runuser, "-u", _OWNER, "--", *argv]
        if setpriv := shutil.which("setpriv"):
            return [setpriv, f"--reuid={self._owner.pw_uid}", f"--regid={self._owner.pw_gid}",
                    "--init-groups", "--", *argv]
        return [str(shutil.which("su")), "-s", "/bin/sh", _OWNER, "-c", shlex.join(argv)]

    def _owner_can_use(self, path: Path) -> bool:
        """Whether the server user can traverse every parent of path and enter it."""
        if self._owner is None:
            return True
        test_bin = shutil.which("test") or "/usr/bin/test"
        test = self._run([test_bin, "-x", str(path)], timeout=10, as_owner=True)
        return test.returncode == 0

    def _make_cluster_dir(self) -> Path:
        self._base_dir.mkdir(parents=True, exist_ok=True)
        cluster = self._base_dir / "pgcluster"
        too_long = len(str(cluster / "sock")) > _MAX_SOCKET_DIR
        if too_long or not self._owner_can_use(self._base_dir):
            # e.g. pytest's /tmp/pytest-of-root is 0700, so the postgres user
            # cannot reach tmp_path; a fresh world-traversable dir can.
            self._own_tmp = Path(tempfile.mkdtemp(prefix="commhub-pg-"))
            self._own_tmp.chmod(0o755)
            cluster = self._own_tmp / "pgcluster"
        cluster.mkdir(mode=0o700)
        # Private socket dir: only the server user (and root) may connect via it.
        (cluster / "sock").mkdir(mode=0o700)
        if self._owner is not None:
            for path in (cluster, cluster / "sock"):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        return cluster

    def _run(self, argv: list[str], *, timeout: float, as_owner: bool = False
             ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._as_owner(argv) if as_owner else argv,
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout, check=False, env=self._env,
            # The server user may not be allowed into our current directory.
            cwd=self._dir or "/",
        )

    def _pg_ctl_stop(self, mode: str, *, check: bool) -> None:
        assert self._bindir is not None and self._dir is not None
        pg_ctl, data = str(self._bindir / "pg_ctl"), str(self._dir / "data")
        result = self._run([pg_ctl, "-D", data, "-m", mode, "-w", "-t", "60", "stop"],
                           timeout=75, as_owner=True)
        if check and result.returncode != 0:
            # A server that already died (crash, OOM kill) counts as stopped:
            # "pg_ctl status" exits 3 when no server is running.
            status = self._run([pg_ctl, "-D", data, "status"], timeout=15, as_owner=True)
            if status.returncode == 3:
                return
            raise RuntimeError(f"pg_ctl stop failed (exit {result.returncode}):\n"
                               f"{result.stdout}{result.stderr}")

    def _client(self, tool: str, *args: str) -> None:
        assert self._bindir is not None
        result = self._run(
            [str(self._bindir / tool), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", SUPERUSER, "--no-password", *args],
            timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed (exit {result.returncode}):\n"
                               f"{result.stdout}{result.stderr}")
