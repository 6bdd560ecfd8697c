"""Configuration: TOML file + `COMMHUB_SECTION__KEY` environment overrides + `env:NAME` secrets.

Validated by pydantic at start; every error names the file (or environment variable), the key
and the problem, so an admin can fix it without reading code.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from commhub.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/commhub.toml")
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/commhub.db"
ENV_PREFIX = "COMMHUB_"
SECRET_PREFIX = "env:"

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str | None = None
    # PEM files: with both set, commhub serves HTTPS (and wss://) itself, TLS 1.2 or newer.
    tls_cert: str | None = None
    tls_key: str | None = None
    # SIGTERM: how long requests already being answered may take before the process exits anyway.
    shutdown_seconds: float = Field(10, ge=0, le=300)
    # Set: /metrics answers only `Authorization: Bearer <metrics_token>` (it holds no personal data,
    # but names sources and mailboxes and shows the traffic).
    metrics_token: SecretStr | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both for HTTPS, or neither")
        for name in ("tls_cert", "tls_key"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise ValueError(f"{name}: no such file: {value}")
        return self

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


class DatabaseSettings(Section):
    url: str = DEFAULT_DATABASE_URL
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_driver(cls, url: str) -> str:
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return url


class PhoneSettings(Section):
    default_region: str = "DE"
    # City-level location of unknown numbers ("Berlin") from phonenumbers' geocoder; it holds every
    # country's prefix table in memory (≈ 100 MB), so it is opt-in. Region, line type and carrier are always given.
    locate: bool = False

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        region = region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{region!r} is not an ISO 3166 region phonenumbers knows (e.g. DE, AT, CH)")
        return region


class SourceSettings(Section):
    name: Name
    adapter: str
    secret: SecretStr | None = None
    options: dict[str, Any] = Field(default_factory=dict)


Secret = SecretStr | None


class MailAuth(Section):
    """LOGIN with a password, or XOAUTH2 (Microsoft 365, Google) with a token from config or a command."""

    username: str | None = None
    password: Secret = None
    auth: Literal["login", "xoauth2"] = "login"
    oauth_token: Secret = None
    # Run (no shell) to get a fresh access token on every connect: tokens expire about hourly.
    oauth_token_command: list[str] | None = None
    # A PEM file of certificate authorities to trust besides the system's (a company's own CA).
    ca_file: str | None = None
    timeout_seconds: float = Field(30, ge=1, le=600)

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.auth == "xoauth2" and not (self.oauth_token or self.oauth_token_command):
            raise ValueError('auth = "xoauth2" needs oauth_token or oauth_token_command')
        if self.auth == "xoauth2" and not self.username:
            raise ValueError('auth = "xoauth2" needs a username')
        return self


class MailboxSettings(MailAuth):
    name: Name
    host: str
    port: int | None = Field(None, ge=1, le=65535)
    tls: Literal["ssl", "starttls", "none"] = "ssl"
    username: str
    folders: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=lambda: ["INBOX"], min_length=1)
    mode: Literal["idle", "poll"] = "idle"
    poll_seconds: int = Field(60, ge=5)
    after_archive: Annotated[str, Field(pattern=r"^(keep|seen|delete|move:.+)$")] = "keep"
    # The mailbox's own addresses (default: the username when it is one): mail from them is outgoing.
    addresses: list[str] = Field(default_factory=list)
    # Messages per UID FETCH: aioimaplib slows down on large responses (IMAP-NOTES), 50–200 is fast.
    batch_size: int = Field(100, ge=1, le=500)
    # Connections used for a folder's first import (later runs need one).
    connections: int = Field(2, ge=1, le=4)
    # Larger messages are filed from their header only, with a warning for the admins.
    max_message_mb: float = Field(25, gt=0, le=1024)

    @field_validator("folders")
    @classmethod
    def _unique_folders(cls, folders: list[str]) -> list[str]:
        if len(set(folders)) != len(folders):
            raise ValueError("folders must be unique")
        return folders

    @model_validator(mode="after")
    def _loopback_without_tls(self) -> Self:
        if self.tls == "none" and not is_loopback(self.host):
            raise ValueError('tls = "none" is only allowed for a server on this machine (127.0.0.1, ::1, localhost)')
        return self

    @property
    def imap_port(self) -> int:
        return self.port or (993 if self.tls == "ssl" else 143)

    @property
    def own_addresses(self) -> list[str]:
        own = [a.strip().lower() for a in self.addresses]
        if not own and "@" in self.username:
            own = [self.username.strip().lower()]
        return own

    @property
    def move_target(self) -> str | None:
        return self.after_archive.removeprefix("move:") if self.after_archive.startswith("move:") else None


class SmtpSettings(MailAuth):
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    tls: Literal["ssl", "starttls", "none"] = "starttls"
    from_: str | None = Field(None, alias="from")
    # Where sent mail is appended (IMAP APPEND), e.g. sent_mailbox = "vertrieb", sent_folder = "Sent".
    sent_mailbox: str | None = None
    sent_folder: str = "Sent"
    # The outbox retries a failed send with growing pauses for this long, then gives up and says so.
    retry_hours: float = Field(48, gt=0, le=24 * 30)

    @model_validator(mode="after")
    def _loopback_without_tls(self) -> Self:
        if self.host and self.tls == "none" and not is_loopback(self.host):
            raise ValueError('tls = "none" is only allowed for a server on this machine (127.0.0.1, ::1, localhost)')
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or {"ssl": 465, "starttls": 587, "none": 25}[self.tls]


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class AgentDefaults(Section):
    language: Literal["de", "en"] = "de"
    token_days: int | None = Field(None, ge=1)
    # A browser console sign-in lasts one working day by default: the cookie is the weaker credential
    # (it lives in a browser profile), so it expires on its own even if nobody signs out.
    session_hours: int = Field(12, ge=1, le=720)


class PushSettings(Section):
    """The agent WebSocket: how long a disconnected client can resume, and how far behind one may fall."""

    backlog_hours: int = Field(24, ge=1, le=24 * 30)
    backlog_messages: int = Field(500, ge=10, le=100_000)
    queue_size: int = Field(256, ge=8, le=100_000)
    heartbeat_seconds: float = Field(30, ge=1, le=600)
    # How often (at most; each check comes after a random half to all of it) an open socket checks that its
    # token is still valid (revoked, expired, agent deactivated).
    credential_check_seconds: float = Field(30, ge=0.1, le=3600)


class AccessSettings(Section):
    """Failed logins and webhook credentials per client address: `failure_limit` within
    `failure_window_seconds` block that address for `block_seconds` (429 with Retry-After)."""

    failure_limit: int = Field(10, ge=1, le=10_000)
    failure_window_seconds: float = Field(60, gt=0, le=86_400)
    block_seconds: float = Field(300, gt=0, le=86_400)
    # Reverse proxies whose X-Forwarded-For is believed (their own address is never the client's):
    # addresses or networks, e.g. ["127.0.0.1", "10.0.0.0/8"].
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
        return entries

    def is_trusted_proxy(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies)


class ClusterSettings(Section):
    """Several nodes on one PostgreSQL (ignored on SQLite, which is one node by nature)."""

    # Shown in /readyz, /metrics and the logs; defaults to the host name and process id.
    node_name: str | None = Field(None, min_length=1, max_length=100)
    # How often a node tries to take over mailboxes nobody archives.
    lease_check_seconds: float = Field(5, ge=0.5, le=300)
    # A node that stops answering (frozen, cut off) loses its mailboxes after this long: PostgreSQL
    # ends its idle lease connection, and another node takes over at its next check.
    lease_timeout_seconds: float = Field(20, ge=2, le=600)


class RetentionSettings(Section):
    """Months after which records of a kind are deleted; unset keeps them (see commhub/gdpr/retention.py)."""

    calls_months: int | None = Field(None, ge=1, le=1200)
    notes_months: int | None = Field(None, ge=1, le=1200)
    emails_months: int | None = Field(None, ge=1, le=1200)
    tasks_months: int | None = Field(None, ge=1, le=1200)

    @property
    def enabled(self) -> bool:
        return any(value is not None for value in self.model_dump().values())


class LoggingSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class Settings(Section):
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    phone: PhoneSettings = PhoneSettings()
    sources: list[SourceSettings] = Field(default_factory=list)
    mailboxes: list[MailboxSettings] = Field(default_factory=list)
    smtp: SmtpSettings = SmtpSettings()
    agents: AgentDefaults = AgentDefaults()
    push: PushSettings = PushSettings()
    access: AccessSettings = AccessSettings()
    cluster: ClusterSettings = ClusterSettings()
    retention: RetentionSettings = RetentionSettings()
    logging: LoggingSettings = LoggingSettings()
    source_file: str | None = Field(None, exclude=True)

    @field_validator("sources", "mailboxes")
    @classmethod
    def _unique_names(cls, items: list[Any]) -> list[Any]:
        names = [item.name for item in items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"names must be unique, repeated: {', '.join(duplicates)}")
        return items

    @model_validator(mode="after")
    def _sent_mailbox_exists(self) -> Self:
        names = {mailbox.name for mailbox in self.mailboxes}
        if self.smtp.sent_mailbox and self.smtp.sent_mailbox not in names:
            raise ValueError(f"smtp.sent_mailbox: no [[mailboxes]] entry named {self.smtp.sent_mailbox!r}")
        return self


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, override, resolve and validate the configuration; raise ConfigError naming the problem."""
    environ = os.environ if environ is None else environ
    path = _choose_path(path, environ)
    origin = str(path) if path else "defaults"
    raw = _read_toml(path) if path else {}
    overridden = _apply_env_overrides(raw, environ)
    resolved = _resolve_secrets(raw, environ, origin, overridden)
    try:
        return Settings.model_validate({**resolved, "source_file": str(path) if path else None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin, overridden)) from None


def _choose_path(path: Path | None, environ: Mapping[str, str]) -> Path | None:
    if path is None and environ.get("COMMHUB_CONFIG"):
        path = Path(environ["COMMHUB_CONFIG"])
    if path is None:
        return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    return path


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Write `COMMHUB_A__B__C=value` into raw["a"]["b"]["c"]; list items by index (`SOURCES__0__SECRET`).

    Returns {dotted key: variable name} so errors can point at the variable rather than the file.
    """
    overridden: dict[str, str] = {}
    for variable, value in sorted(environ.items()):
        if not variable.startswith(ENV_PREFIX) or "__" not in variable:
            continue
        path = [part.lower() for part in variable[len(ENV_PREFIX):].split("__")]
        _set_path(raw, path, _parse_env_value(value), variable)
        overridden[".".join(path)] = variable
    return overridden


def _set_path(node: Any, path: list[str], value: Any, variable: str) -> None:
    for index, part in enumerate(path):
        last = index == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"environment {variable}: no list item {part!r} to override")
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
            if not last:
                node.setdefault(key, {})
        else:
            raise ConfigError(f"environment {variable}: {'.'.join(path[:index])} is not a section")
        if last:
            node[key] = value
        else:
            node = node[key]


def _parse_env_value(value: str) -> Any:
    """Arrays and tables are written as TOML (`["INBOX", "Sent"]`); everything else stays text,
    which pydantic converts where the key wants a number or a flag (so a password "1234" stays text)."""
    if not value.lstrip().startswith(("[", "{")):
        return value
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _resolve_secrets(node: Any, environ: Mapping[str, str], origin: str,
                     overridden: dict[str, str], path: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _resolve_secrets(v, environ, origin, overridden, _join(path, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_secrets(v, environ, origin, overridden, _join(path, str(i))) for i, v in enumerate(node)]
    if isinstance(node, str) and node.startswith(SECRET_PREFIX):
        name = node[len(SECRET_PREFIX):]
        if name not in environ:
            where = overridden.get(path, origin)
            raise ConfigError(f"{where}: {path}: environment variable {name} is not set")
        return environ[name]
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(exc: ValidationError, origin: str, overridden: dict[str, str]) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        where = overridden.get(key, origin)
        problem = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            problem = "unknown key"
        lines.append(f"{where}: {key}: {problem}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
