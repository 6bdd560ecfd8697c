"""A private Dovecot IMAP server for the mail tests, on free loopback ports.

Never the machine's own Dovecot: `dovecot -F -c <our conf>` reads only our config file, and its
base_dir (sockets, pid file), state_dir, log, Maildirs and TLS certificate all live in one private
directory. Two listeners: `port` (plain IMAP, also offering STARTTLS, with LOGIN allowed before TLS
so tests can stay on loopback) and `imaps_port` (implicit TLS), both with a self-signed certificate
for "localhost"/127.0.0.1 whose file is `ca_file`.

Running as root, Dovecot drops privileges: its auth process runs as `default_internal_user`
(`dovecot`) and its login processes as `default_login_user` (`dovenull`), both created by Debian's
dovecot-core; mail processes run as the uid the userdb returns, and Dovecot refuses uids below
`first_valid_uid` (500 by default) and uid 0. We hand out the `dovecot` user's uid as the mail uid
(first/last_valid_uid set to exactly it), so the Maildirs are owned by it and every path above them
must be traversable by it (pytest's /tmp/pytest-of-root is 0700, hence the fallback to a private
0755 temp dir); the passwd-files must be readable by it too, as the auth process reads them. As any
other user (tried as `nobody`), Dovecot cannot switch users: everything runs as that user and the
login chroots are off.

Mailboxes are Maildir++ ("." separates levels; "Entwürfe" is Maildir/.Entw&APw-rfe on disk).
Measured: a start takes ~0.06-0.1 s, a stop ~0.01-0.3 s; a failed LOGIN is answered after ~0.5 s
(Dovecot flushes auth failures on a 500 ms timer, even with auth_failure_delay = 0).

XOAUTH2 and OAUTHBEARER work through Dovecot's oauth2 passdb, which POSTs the bearer token to an
introspection endpoint we run in a thread (`oauth_tokens`, one per user).
"""

from __future__ import annotations

import atexit
import base64
import grp
import http.server
import imaplib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import pytest
from support.certs import make_localhost_cert

HOST = "127.0.0.1"
START_TIMEOUT = 15.0  # seconds until a LOGIN must work
_SYSTEM_MAIL_USER = "dovecot"  # from Debian's dovecot-core; our mail uid when running as root
_STOP_GRACE = 0.3  # seconds between SIGTERM and SIGKILL, see _end()
_MAX_BASE_DIR = 80  # base_dir holds Unix sockets (sun_path is 108 bytes) such as login/imap-urlauth


def find_dovecot() -> str | None:
    """The dovecot binary, or None when Debian's dovecot-imapd is not installed."""
    # A non-root PATH often lacks /usr/sbin.
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/sbin")


def require_dovecot() -> None:
    """Without Dovecot the test fails under CI (which installs it) and skips elsewhere."""
    if find_dovecot() is None:
        message = "Dovecot is not installed (Debian package dovecot-imapd); the IMAP tests need it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + " (not CI)")


def imap_utf7(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 §5.1.3): "Entwürfe" -> "Entw&APw-rfe"."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode()
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _quote(mailbox: str) -> str:
    """imaplib sends arguments verbatim, so a name with spaces must be quoted by us."""
    return '"' + imap_utf7(mailbox).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _free_ports(count: int) -> list[int]:
    """Ports nobody listens on now; bound all at once so they differ. Dovecot binds them later, a
    small race we accept on loopback."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


class _Introspection(http.server.ThreadingHTTPServer):
    """An OAuth2 token introspection endpoint (RFC 7662) that knows a fixed set of tokens."""

    daemon_threads = True

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens  # user -> token, shared with Dovecot so rotation shows at once
        super().__init__((HOST, 0), _IntrospectionHandler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/introspect"


class _IntrospectionHandler(http.server.BaseHTTPRequestHandler):
    server: _Introspection

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        token = urllib.parse.parse_qs(body.decode()).get("token", [""])[0]
        user = next((u for u, t in self.server.tokens.items() if t == token), None)
        answer = {"active": "true", "username": user} if user else {"active": "false"}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        """Dovecot's log already records each login; keep pytest's output clean."""


class Dovecot:
    """A private Dovecot on loopback: start/stop/kill it and prepare mailboxes behind a client's back."""

    def __init__(self, directory: Path, *, user: str = "alice", password: str = "alice-secret") -> None:
        self.user = user
        self.password = password
        self._passwords = {user: password}
        self.oauth_tokens = {user: secrets.token_urlsafe(16)}
        self.port, self.imaps_port = _free_ports(2)
        self._mail_uid, self._mail_gid, self._internal_user = self._identities()
        self._own_tmp: Path | None = None
        self.root = self._private_dir(Path(directory))
        certs = make_localhost_cert(self.root)
        self.ca_file = certs.cert
        self._key_file = certs.key
        self.log_file = self.root / "dovecot.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._introspection: _Introspection | None = None
        self._write_passwd(user)

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and return once a real LOGIN works."""
        if self._process is not None:
            raise RuntimeError("Dovecot is already running")
        binary = find_dovecot()
        if binary is None:
            raise RuntimeError("dovecot not found: install Debian's dovecot-imapd")
        self._start_introspection()
        self._write_config()
        with self.log_file.open("ab") as log:
            # Config errors go to stderr before Dovecot opens log_path: keep both in one file.
            self._process = subprocess.Popen(
                [binary, "-F", "-c", str(self.root / "dovecot.conf")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.root, start_new_session=True,
            )
        atexit.register(self.kill)
        self._wait_until_ready(timeout)

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM: Dovecot closes client connections and flushes indexes)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Crash the server: SIGKILL to Dovecot and all its processes, nothing flushed."""
        self._end(signal.SIGKILL)

    def freeze(self) -> None:
        """SIGSTOP every Dovecot process: connections stay open and nothing answers (a hung server)."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Stop and start again on the same ports with the same mailboxes; clients are disconnected."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop everything and remove the private temp dir, if we had to make one."""
        self.stop()
        if self._introspection is not None:
            self._introspection.shutdown()
            self._introspection.server_close()
            self._introspection = None
        if self._own_tmp is not None:
            shutil.rmtree(self._own_tmp, ignore_errors=True)
            self._own_tmp = None

    # -- users ---------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Add a mailbox user who can log in at once, no restart needed."""
        if name in self._passwords:
            raise ValueError(f"user {name!r} exists")
        self._passwords[name] = password
        self.oauth_tokens[name] = secrets.token_urlsafe(16)
        self._write_passwd(name)

    @property
    def oauth_token(self) -> str:
        """A bearer token the introspection endpoint accepts for `user` (XOAUTH2, OAUTHBEARER)."""
        return self.oauth_tokens[self.user]

    def rotate_oauth_token(self, user: str | None = None) -> str:
        """Give the user a new token; the old one is refused from now on (an expired access token)."""
        name = user or self.user
        self.oauth_tokens[name] = secrets.token_urlsafe(16)
        return self.oauth_tokens[name]

    # -- mailbox content, through IMAP as a second client would ------------

    def create_folder(self, name: str, *, user: str | None = None, subscribe: bool = True) -> None:
        with self._imap(user) as imap:
            self._ok(imap.create(_quote(name)), f"CREATE {name!r}")
            if subscribe:
                self._ok(imap.subscribe(_quote(name)), f"SUBSCRIBE {name!r}")

    def append(self, folder: str, raw: bytes, flags: Iterable[str] | None = None,
               *, user: str | None = None) -> int:
        """Store a message and return its UID. imaplib turns bare LFs into CRLF, as IMAP wants."""
        flag_list = f"({' '.join(flags)})" if flags else None
        with self._imap(user) as imap:
            data = self._ok(imap.append(_quote(folder), flag_list, None, raw), f"APPEND to {folder!r}")
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0] or b"")
        if match is None:
            raise RuntimeError(f"no APPENDUID in {data!r}")
        return int(match[1])

    def uids(self, folder: str, *, user: str | None = None) -> list[int]:
        with self._imap(user, examine=folder) as imap:
            data = self._ok(imap.uid("SEARCH", "ALL"), f"UID SEARCH in {folder!r}")
        return [int(uid) for uid in (data[0] or b"").split()]

    def uidvalidity(self, folder: str, *, user: str | None = None) -> int:
        with self._imap(user) as imap:
            data = self._ok(imap.status(_quote(folder), "(UIDVALIDITY)"), f"STATUS {folder!r}")
        match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
        if match is None:
            raise RuntimeError(f"no UIDVALIDITY in {data!r}")
        return int(match[1])

    def flags(self, folder: str, uid: int, *, user: str | None = None) -> set[str]:
        """The message's stored flags; \\Recent is left out, it belongs to a session, not the message."""
        with self._imap(user, examine=folder) as imap:
            data = self._ok(imap.uid("FETCH", str(uid), "(FLAGS)"), f"UID FETCH {uid}")
        for item in data:
            match = re.search(rb"FLAGS \(([^)]*)\)", item if isinstance(item, bytes) else b"")
            if match:
                return set(match[1].decode().split()) - {"\\Recent"}
        raise KeyError(f"no message with UID {uid} in {folder!r}")

    def expunge(self, folder: str, uid: int, *, user: str | None = None) -> None:
        with self._imap(user) as imap:
            self._ok(imap.select(_quote(folder)), f"SELECT {folder!r}")
            self._ok(imap.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)"), f"STORE {uid}")
            self._ok(imap.uid("EXPUNGE", str(uid)), f"UID EXPUNGE {uid}")

    def change_uidvalidity(self, folder: str, *, user: str | None = None) -> int:
        """Make the server announce a new UIDVALIDITY for folder: the same messages, numbered anew from 1.

        What happens when a server loses or rebuilds its UID list (a restore, a migration). We stop
        Dovecot, delete the folder's dovecot-uidlist and indexes, and start again: Dovecot rescans
        the Maildir and takes the next value from dovecot-uidvalidity, which only ever grows.
        Connected clients are cut off, as by restart().
        """
        before, count = self.uidvalidity(folder, user=user), len(self.uids(folder, user=user))
        self.stop()
        directory = self._folder_dir(folder, user)
        for path in [*directory.glob("dovecot-uidlist*"), *directory.glob("dovecot.index*")]:
            path.unlink()
        self.start()
        after = self.uidvalidity(folder, user=user)
        if after == before or len(self.uids(folder, user=user)) != count:
            raise RuntimeError(f"UIDVALIDITY of {folder!r} is still {before} or messages were lost")
        return after

    # -- helpers -------------------------------------------------------------

    @contextmanager
    def _imap(self, user: str | None, *, examine: str | None = None,
              timeout: float = 10.0) -> Iterator[imaplib.IMAP4]:
        name = user or self.user
        with imaplib.IMAP4(HOST, self.port, timeout=timeout) as imap:
            self._ok(imap.login(name, self._passwords[name]), f"LOGIN {name}")
            if examine is not None:
                self._ok(imap.select(_quote(examine), readonly=True), f"EXAMINE {examine!r}")
            yield imap

    @staticmethod
    def _ok(response: tuple[str, list[bytes | None]], what: str) -> list[bytes | None]:
        status, data = response
        if status != "OK":
            raise RuntimeError(f"{what} failed: {status} {data!r}")
        return data

    def _folder_dir(self, folder: str, user: str | None) -> Path:
        """Maildir++ layout: INBOX is the Maildir itself, "Sent" is Maildir/.Sent (name in UTF-7)."""
        maildir = self.root / "mail" / (user or self.user) / "Maildir"
        return maildir if folder.upper() == "INBOX" else maildir / f".{imap_utf7(folder)}"

    @staticmethod
    def _identities() -> tuple[int, int, str]:
        """Mail uid and gid, and the user Dovecot's own unprivileged processes run as."""
        if os.geteuid() != 0:
            return os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name
        try:
            entry = pwd.getpwnam(_SYSTEM_MAIL_USER)
        except KeyError:
            raise RuntimeError(
                f"running as root, but there is no {_SYSTEM_MAIL_USER!r} user: install dovecot-core"
            ) from None
        return entry.pw_uid, entry.pw_gid, _SYSTEM_MAIL_USER

    def _private_dir(self, directory: Path) -> Path:
        """directory/dovecot, or a fresh 0755 temp dir if the mail user can't reach it or it is too long."""
        directory.mkdir(parents=True, exist_ok=True)
        root = directory / "dovecot"
        if len(str(root / "run")) > _MAX_BASE_DIR or not self._mail_user_can_enter(directory):
            self._own_tmp = Path(tempfile.mkdtemp(prefix="commhub-dovecot-"))
            self._own_tmp.chmod(0o755)
            root = self._own_tmp / "dovecot"
        root.mkdir(mode=0o755)
        root.chmod(0o755)  # whatever the umask
        (root / "mail").mkdir()
        os.chown(root / "mail", self._mail_uid, self._mail_gid)
        return root

    def _mail_user_can_enter(self, directory: Path) -> bool:
        if os.geteuid() != 0:
            return True
        test = shutil.which("test") or "/usr/bin/test"
        probe = subprocess.run([test, "-x", str(directory)], user=self._mail_uid,
                               group=self._mail_gid, extra_groups=[], check=False, cwd="/")
        return probe.returncode == 0

    def _write_passwd(self, name: str) -> None:
        """One passwd-file per user: Dovecot rereads a changed passwd-file at most once a second,
        but opens a file it has not seen yet at once, so a user added mid-test can log in at once.
        Read by the auth process, which runs as the unprivileged internal user."""
        if not re.fullmatch(r"[a-z][a-z0-9._-]*", name):  # it names a file, looked up as %Lu
            raise ValueError(f"user name {name!r}: use lowercase letters, digits, '.', '_', '-'")
        path = self.root / "users" / name
        path.parent.mkdir(mode=0o755, exist_ok=True)
        path.write_text(f"{name}:{{PLAIN}}{self._passwords[name]}\n")
        path.chmod(0o644)

    def _start_introspection(self) -> None:
        if self._introspection is None:
            self._introspection = _Introspection(self.oauth_tokens)
            # A short poll interval, as shutdown() waits for the loop to notice.
            thread = threading.Thread(target=self._introspection.serve_forever, args=(0.02,),
                                      name="dovecot-oauth2-introspection", daemon=True)
            thread.start()

    def _write_config(self) -> None:
        assert self._introspection is not None
        (self.root / "oauth2.conf").write_text(
            "introspection_mode = post\n"
            f"introspection_url = {self._introspection.url}\n"
            "force_introspection = yes\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
        )
        (self.root / "dovecot.conf").write_text(self._config())

    def _config(self) -> str:
        root, uid, gid = self.root, self._mail_uid, self._mail_gid
        group = grp.getgrgid(gid).gr_name
        # Without root Dovecot can neither switch users nor chroot its login processes.
        as_root = os.geteuid() == 0
        login_user = "" if as_root else f"default_login_user = {self._internal_user}\n"
        no_chroot = "" if as_root else "  chroot =\n"
        return f"""\
# Generated by tests/support/dovecot.py for one test run; see its docstring.
base_dir = {root}/run
state_dir = {root}/state
instance_name = commhub-test-{self.port}
protocols = imap
listen = {HOST}
log_path = {self.log_file}
ssl = yes
ssl_cert = <{self.ca_file}
ssl_key = <{self._key_file}
# LOGIN before STARTTLS on the plain port, so tests may stay on loopback without TLS.
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_verbose = yes
# Tests of wrong passwords should not wait the default 2 s.
auth_failure_delay = 0
default_internal_user = {self._internal_user}
default_internal_group = {group}
{login_user}first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = maildir:~/Maildir
mail_fsync = never
# An archiver and a test may hold several sessions at once; the default is 10 per user and IP.
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = {root}/users/%Lu
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
# Nor wait 2, 4, 8... s after repeated failures from one IP: the auth process looks that
# penalty up in anvil through this socket, and does without when it cannot connect.
service anvil {{
{no_chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
{no_chroot}  inet_listener imap {{
    address = {HOST}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
"""

    def _wait_until_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = RuntimeError(f"dovecot exited with status {self._process.returncode}")
                break
            try:
                with self._imap(None, timeout=1.0):
                    return
            except (OSError, imaplib.IMAP4.abort) as exc:  # not listening yet
                error = exc
                time.sleep(0.02)
            except (imaplib.IMAP4.error, RuntimeError) as exc:  # it answered: LOGIN refused
                error = exc
                break
        self._end(signal.SIGKILL, wait_for_ports=False)  # they may be busy for another reason
        raise RuntimeError(f"Dovecot did not accept a LOGIN on {HOST}:{self.port} within {timeout} s "
                           f"({error}).\nLog tail ({self.log_file}):\n{_tail(self.log_file)}")

    def _end(self, sig: signal.Signals, *, wait_for_ports: bool = True) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.kill)
        # The whole group, also for SIGTERM: each process shuts down cleanly on its own SIGTERM
        # within milliseconds. The master, told alone, takes ~1.1 s to end its children, and even
        # now it sometimes sleeps a second over an unreaped child (measured); past the grace time
        # only that idle master is left, and SIGKILL costs nothing.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if wait_for_ports:
            self._wait_ports_free()

    def _wait_ports_free(self, timeout: float = 10.0) -> None:
        """Children may hold the listening sockets a moment longer than the master lives."""
        deadline = time.monotonic() + timeout
        while not all(_port_is_free(port) for port in (self.port, self.imaps_port)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"ports {self.port}/{self.imaps_port} still busy after stopping Dovecot")
            time.sleep(0.02)


def running_dovecot(directory: Path) -> Iterator[Dovecot]:
    """A started private Dovecot in `directory`, closed afterwards; the body of the suites' fixtures
    (fails under CI when Dovecot is not installed, skips elsewhere)."""
    require_dovecot()
    server = Dovecot(directory)
    try:
        server.start()
        yield server
    finally:
        server.close()
