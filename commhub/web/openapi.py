"""The OpenAPI 3.1 document of the REST API, built from the route table and the pydantic bodies."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from commhub import __version__

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}}


def build_document() -> dict[str, Any]:
    from commhub.web.routes import ROUTES  # the table imports this module's handler

    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": _ERROR}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "commhub", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


def _operation(route: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {str(route.status): {"description": "success"}}
    if route.status != 204:
        schema = {"type": "object"} if route.produces == "application/json" else {"type": "string", "format": "binary"}
        responses[str(route.status)]["content"] = {route.produces: {"schema": schema}}
    operation: dict[str, Any] = {"summary": route.summary, "operationId": _operation_id(route),
                                 "parameters": _parameters(route), "responses": responses}
    for status, text in (("400", "bad request"), ("401", "no or unknown token"), ("404", "not found"),
                         ("422", "body breaks the schema")):
        responses.setdefault(status, {"description": text, **error})
    if route.admin:
        responses["403"] = {"description": "needs the admin role", **error}
    if route.public:
        operation["security"] = []
        responses.pop("401")
    if route.body is not None:
        name = route.body.__name__
        schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}
    return operation


def _operation_id(route: Any) -> str:
    return f"{route.method.lower()}_{route.handler.__name__}"


def _parameters(route: Any) -> list[dict[str, Any]]:
    parameters = [{"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
                  for name in re.findall(r"{(\w+)}", route.path)]
    parameters += [{"name": name, "in": "query", "required": False, "description": text,
                    "schema": {"type": "string"}} for name, text in route.query.items()]
    return parameters


def _path_schema(name: str) -> dict[str, Any]:
    # Ids are integers; `{source}` and `{name}` are names.
    return {"type": "integer", "minimum": 1} if name == "id" or name.endswith("_id") else {"type": "string"}


async def document(request: web.Request) -> web.Response:
    return web.json_response(build_document())
