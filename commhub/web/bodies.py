"""Reading request input: JSON bodies into pydantic models, query parameters into typed values."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from commhub.errors import BadRequest, Forbidden, ValidationFailed
from commhub.keys import AGENT
from commhub.store.models import Agent

Model = TypeVar("Model", bound=BaseModel)


async def read_json(request: web.Request, model: type[Model]) -> Model:
    if request.content_type != "application/json":
        raise BadRequest("send the body as JSON with Content-Type: application/json")
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("the body breaks the schema", details=validation_details(exc)) from None


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
