"""Reading request input: JSON bodies into pydantic models, query parameters into typed values."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import PayloadEncodingError
from pydantic import BaseModel, ValidationError

from commhub.errors import BadRequest, Forbidden, ValidationFailed
from commhub.keys import AGENT
from commhub.store.models import Agent

Model = TypeVar("Model", bound=BaseModel)


async def read_json(request: web.Request, model: type[Model]) -> Model:
    if request.content_type != "application/json":
        raise BadRequest("send the body as JSON with Content-Type: application/json")
    raw = await read_body(request)
    try:
        # RFC 8259 §8.1: JSON between systems is UTF-8 (json.loads would also guess UTF-16 and -32)
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8: send JSON encoded as UTF-8") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # also a number of over 4300 digits, or nesting too deep
        raise BadRequest(f"body is not valid JSON: {str(exc)[:200]}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("the body breaks the schema", details=validation_details(exc)) from None


# What reading a body raises when the client hangs up before it sent all it announced. Unhandled, the
# ConnectionResetError would be taken for a database outage (503, logged as one).
CLIENT_GONE = (ConnectionResetError, ClientPayloadError, PayloadEncodingError)


def body_cut_off() -> BadRequest:
    return BadRequest("the body ended before its announced length: the client closed the connection")


async def read_body(request: web.Request) -> bytes:
    """The whole body (aiohttp enforces the size limit: 413); a body cut off is a bad request."""
    try:
        return await request.read()
    except CLIENT_GONE:
        raise body_cut_off() from None


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(part) for part in error["loc"]) or "(body)", "problem": error["msg"]}
            for error in exc.errors()]


def int_param(request: web.Request, name: str, default: int, *, low: int = 1, high: int = 1000) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"query parameter {name!r} must be between {low} and {high}")
    return value


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 10 or int(raw) > 2**31 - 1:
        raise BadRequest(f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


def current_agent(request: web.Request) -> Agent:
    return request[AGENT]


def require_admin(request: web.Request) -> Agent:
    agent = current_agent(request)
    if agent.role != "admin":
        raise Forbidden("this needs the admin role")
    return agent
