"""What an adapter may import: the request it reads, the events it returns, the errors it raises.

An adapter is pure. It gets a `RawRequest` (method, public URL, headers, raw body) and the
`SourceContext` of the configured source, verifies the request, turns it into commhub's own
`CallEvent`s and builds the reply its phone system expects. It never touches the database or
the network; the core does that (`commhub.telephony.ingest`).

Error tree of this contract (all rendered as JSON by the web layer):

    BadPayload (400)          not this vendor's request, or a field is missing or malformed
    VerificationFailed (401)  missing or wrong signature / URL secret
    Replayed (403)            a correctly signed request seen before, or signed too long ago
    IgnoredEvent              a real vendor event commhub does not use: 200 and the vendor's empty reply
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs

from commhub.errors import BadRequest, Forbidden, Unauthorized

Direction = Literal["in", "out"]


class Phase(StrEnum):
    """Where in its life a call event says the call is."""

    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


class Outcome(StrEnum):
    """How an ended call ended, when the vendor says so (else the state machine derives it)."""

    COMPLETED = "completed"  # answered and hung up
    MISSED = "missed"  # nobody answered (incl. caller gave up, voicemail)
    REJECTED = "rejected"  # refused by the callee or blocked
    BUSY = "busy"
    FAILED = "failed"  # network, congestion, unknown number
    FORWARDED = "forwarded"  # diverted elsewhere; the call goes on as a new call (no callback task)


# --- errors -----------------------------------------------------------------------------------


class BadPayload(BadRequest):
    """400: the request is not a valid request of this vendor. Name the field."""

    code = "bad_payload"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, details={"field": field} if field else None)
        self.field = field


class VerificationFailed(Unauthorized):
    code = "verification_failed"


class Replayed(Forbidden):
    code = "replayed"


class IgnoredEvent(Exception):  # noqa: N818 - not an error: a vendor event commhub has no use for
    """A genuine vendor event commhub does not use: answered 200 with `reply`, nothing stored."""

    def __init__(self, reason: str, reply: Reply | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reply = reply


# --- what comes in ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawRequest:
    """A webhook request as received, before anything is trusted.

    `url` is the *public* URL the vendor called (configured `server.public_url` + path + query):
    Twilio signs that, not what a reverse proxy forwards.
    """

    method: str
    url: str
    headers: Mapping[str, str]  # case-insensitive
    query: Mapping[str, str]
    body: bytes = b""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def content_type(self) -> str:
        return (self.header("Content-Type") or "").split(";", 1)[0].strip().lower()

    def form(self) -> dict[str, list[str]]:
        """The form fields of an `application/x-www-form-urlencoded` body (every value of a repeated key)."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadPayload("the form body is not UTF-8") from None
        return parse_qs(text, keep_blank_values=True, strict_parsing=False)

    def json(self) -> Any:
        try:
            # RFC 8259 §8.1: JSON between systems is UTF-8 (json.loads would also guess UTF-16 and -32)
            text = self.body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadPayload("the JSON body is not UTF-8") from None
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:  # also a number of over 4300 digits, or nesting too deep
            raise BadPayload(f"the body is not valid JSON: {str(exc)[:200]}") from None

    def fields(self) -> dict[str, list[str]]:
        """Form body, JSON object body, or (for GET) the query string: one shape for all three."""
        if self.method == "GET" or not self.body:
            return {key: [value] for key, value in self.query.items() if key != "token"}
        if self.content_type == "application/json" or self.body.lstrip()[:1] == b"{":
            data = self.json()
            if not isinstance(data, dict):
                raise BadPayload("the JSON body must be an object")
            return {str(k): [str(x) for x in v] if isinstance(v, list) else ["" if v is None else str(v)]
                    for k, v in data.items()}
        return self.form()


def first(fields: Mapping[str, list[str]], name: str, *, required: bool = True) -> str | None:
    """The first value of a field; `BadPayload` naming it when required and missing or empty."""
    values = fields.get(name) or fields.get(name + "[]") or []
    value = values[0].strip() if values else ""
    if not value:
        if required:
            raise BadPayload(f"field {name!r} is missing or empty", field=name)
        return None
    return value


def as_direction(value: str | None, field: str = "direction") -> Direction:
    """`in` or `out`, or `BadPayload` naming the field."""
    if value == "in" or value == "out":
        return value
    raise BadPayload(f"{field} must be 'in' or 'out', not {value!r}", field=field)


def every(fields: Mapping[str, list[str]], name: str) -> tuple[str, ...]:
    """All non-empty values of a repeated field (`user[]=a&user[]=b` or `user=a&user=b`)."""
    values = list(fields.get(name + "[]", [])) + list(fields.get(name, []))
    return tuple(v.strip() for v in values if v.strip())


class ReplayGuard(Protocol):
    def first_time(self, key: str, *, until: datetime) -> bool:
        """True the first time `key` is seen; remembers it until `until`."""


@dataclass(frozen=True)
class SourceContext:
    """The configured source a request was posted to (`[[sources]]` in the config)."""

    name: str
    secret: str | None
    options: Mapping[str, Any]
    hook_url: str  # public URL of this source's webhook, with `?token=` when the source uses one
    replay: ReplayGuard
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


# --- what goes out ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallEvent:
    """commhub's own call event: what every adapter produces, whatever its vendor calls things.

    Numbers are passed as the vendor sent them (commhub normalises them with the configured
    region), except that an adapter whose vendor writes E.164 without "+" adds it: only the
    adapter knows that `492111234567` is international.
    """

    call_id: str  # the provider's id of the call
    phase: Phase
    direction: Direction
    caller: str | None  # the calling party (a number, "anonymous", a SIP URI…)
    callee: str | None  # the called party (dialled number)
    targets: tuple[str, ...] = ()  # routing keys that ring: extensions, user ids, queue names
    answered_by: str | None = None  # routing key of whoever answered
    outcome: Outcome | None = None  # ended: the vendor's verdict; None lets the state machine decide
    occurred_at: datetime | None = None  # the vendor's time of the event, when it gives one
    duration: int | None = None  # seconds talked, when the vendor says
    related_call_id: str | None = None  # the call this one was transferred or forwarded from
    caller_name: str | None = None  # the name the phone network or PBX shows
    event_id: str | None = None  # the vendor's id of this delivery, when it has one (dedupe)

    def __post_init__(self) -> None:
        check_storable(self)


# What the call path can store on either backend (commhub/store/models.py, `calls`): ids, numbers and
# names in String(200) columns, which PostgreSQL enforces; seconds in an INTEGER column; no NUL, which
# PostgreSQL text cannot hold; no lone surrogates (a JSON "\\ud800"), which no UTF-8 database takes.
MAX_TEXT = 200
MAX_SECONDS = 2**31 - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
_TEXT_FIELDS = ("call_id", "caller", "callee", "answered_by", "related_call_id", "caller_name")


def check_storable(event: CallEvent) -> None:
    """`BadPayload` naming the event field an adapter filled with something commhub cannot store."""
    if not event.call_id.strip():
        raise BadPayload("the call id is empty", field="call_id")
    if event.direction not in ("in", "out"):
        raise BadPayload(f"direction must be 'in' or 'out', not {event.direction!r}", field="direction")
    for name in _TEXT_FIELDS:
        _check_text(name, getattr(event, name), MAX_TEXT)
    _check_text("event_id", event.event_id, None)
    for target in event.targets:
        _check_text("targets", target, None)
    if event.duration is not None and not 0 <= event.duration <= MAX_SECONDS:
        raise BadPayload(f"a duration of {event.duration} seconds is out of range", field="duration")
    if event.occurred_at is not None:
        plausible_time(event.occurred_at, "occurred_at")


def _check_text(name: str, value: str | None, limit: int | None) -> None:
    if value is None:
        return
    if limit is not None and len(value) > limit:
        raise BadPayload(f"{name} is longer than {limit} characters", field=name)
    if "\x00" in value:
        raise BadPayload(f"{name} contains a NUL character", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadPayload(f"{name} is not valid Unicode (a lone surrogate)", field=name) from None


def plausible_time(moment: datetime, field: str) -> datetime:
    """`moment` in UTC, or `BadPayload` naming `field` when it has no offset or lies outside 1970–9998."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BadPayload(f"{field} needs a UTC offset", field=field)
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise BadPayload(f"{field} is out of range", field=field) from None
    if not EARLIEST <= moment < LATEST:
        raise BadPayload(f"{field} {moment.isoformat()} is out of range", field=field)
    return moment


def whole_seconds(text: str, field: str) -> int:
    """A count of seconds written as ASCII digits (`"²".isdigit()` is true, int("²") fails), in range."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > MAX_SECONDS:
        raise BadPayload(f"{field} must be whole seconds, not {text[:40]!r}", field=field)
    return int(text)


@dataclass(frozen=True)
class Reply:
    """The HTTP answer the vendor expects."""

    body: str | bytes = ""
    content_type: str = "text/plain"
    status: int = 200


@dataclass(frozen=True)
class LookupMatch:
    """One customer file for the caller-name lookup (`GET /lookup/{source}?number=`)."""

    kind: Literal["contact", "organization"]
    id: int
    name: str
    first_name: str | None
    last_name: str | None
    company: str | None
    customer_class: str | None
    email: str | None
    phone: str | None  # the matched stored number, E.164
    mobile: str | None
    url: str  # where the agent's browser shows the file


@dataclass(frozen=True)
class LookupAnswer:
    number: str  # as asked
    e164: str | None
    withheld: bool
    display_name: str  # what a phone display shows: best match, "Name (Company)", or the number
    matches: tuple[LookupMatch, ...]
    ambiguous: bool


def lookup_json(answer: LookupAnswer) -> Reply:
    """The default lookup reply (JSON), used by every adapter that does not format its own."""
    body = {"number": answer.number, "e164": answer.e164, "withheld": answer.withheld,
            "name": answer.display_name, "ambiguous": answer.ambiguous,
            "matches": [m.__dict__ for m in answer.matches]}
    return Reply(json.dumps(body, ensure_ascii=False), "application/json")


def lookup_text(answer: LookupAnswer) -> Reply:
    """Plain text, one line: what Asterisk's `CURL()` or FreeSWITCH's cidlookup put on a display."""
    return Reply(answer.display_name, "text/plain")


# --- verification helpers -----------------------------------------------------------------------


def equal_secrets(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; a missing side never matches."""
    if not given or not expected:
        return False
    # A header aiohttp could not decode as UTF-8 holds surrogate escapes: they compare as bytes too.
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def check_url_token(request: RawRequest, source: SourceContext) -> None:
    """For vendors that cannot sign: the source's secret rides in the URL as `?token=`."""
    token = request.query.get("token")
    if token is None:
        raise VerificationFailed("this source needs its secret in the URL: ?token=…")
    if not equal_secrets(token, source.secret):
        raise VerificationFailed("wrong token for this source")


# --- the adapter ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdapterSpec:
    """One vendor. Registered under the `commhub.adapters` entry-point group (see pyproject.toml).

    - `verify(request, source)` raises `VerificationFailed`/`Replayed`, or returns.
    - `parse(request, source)` returns the events in the request (usually one), or raises
      `BadPayload` / `IgnoredEvent`. It runs only after `verify` passed.
    - `reply(request, events, source)` builds the answer once the events are stored.
    - `lookup_reply(answer)` formats `GET /lookup/{source}`; JSON unless the vendor needs other.
    - `options` documents the `[[sources]].options` keys the adapter reads (name -> meaning).
    - `token_in_hook_url`: whether `SourceContext.hook_url` carries `?token=<secret>`. Vendors that
      sign their callbacks with the secret (Twilio's auth token) must not get it back in a URL.
    """

    name: str
    title: str
    verify: Callable[[RawRequest, SourceContext], None]
    parse: Callable[[RawRequest, SourceContext], list[CallEvent]]
    reply: Callable[[RawRequest, list[CallEvent], SourceContext], Reply]
    lookup_reply: Callable[[LookupAnswer], Reply] = lookup_json
    options: Mapping[str, str] = field(default_factory=dict)
    docs: str = ""  # one paragraph: how to point this phone system at commhub
    token_in_hook_url: bool = True


def empty_reply(request: RawRequest, events: list[CallEvent], source: SourceContext) -> Reply:
    return Reply("", "text/plain")


def plus_e164(number: str | None) -> str | None:
    """`492111234567` → `+492111234567` for vendors that write E.164 without "+" (sipgate, Zammad).

    `phonenumbers` would read the bare digits as a German national number and give a valid but wrong
    `+49492111234567`. Anything not purely digits (`anonymous`, `+49…`, `0211…`) is returned unchanged;
    so are national numbers starting with 0.
    """
    if number and number.isdigit() and not number.startswith("0") and len(number) > 6:
        return "+" + number
    return number
