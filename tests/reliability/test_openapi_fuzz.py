"""schemathesis against the OpenAPI document of a real running commhub (demo customers, every adapter as a
source): no operation answers 5xx, whatever it is sent; and without credentials every /api operation
answers 401, except the ones the document itself declares public (`security: []`).

Deterministic (fixed seed, derandomized) and bounded: every operation gets the schema's examples, the
coverage phase's boundary and type-violating cases, and `MAX_EXAMPLES` fuzzed ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from support.fuzz_server import FuzzServer, http

from commhub.web.openapi import build_document

MAX_EXAMPLES = 15
CONFIG = {"seed": 20261124, "suppress-health-check": ["all"],
          "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
          "phases": {"stateful": {"enabled": False}}, "request-timeout": 30}
# Revoking a token (`DELETE /api/tokens/{id}`) could revoke the very token the fuzzing runs with: every
# later request would then test only the 401 path. It is fuzzed unauthenticated, and below with a token
# of its own.
WITH_ADMIN_TOKEN_EXCEPT = ("DELETE", "/api/tokens/{id}")
SENT: Counter[str] = Counter()  # requests per run and status class, for the summary line
REACHED: set[tuple[str, str]] = set()  # operations the authenticated run sent requests to


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    running = FuzzServer(tmp_path_factory.mktemp("fuzz"))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def document(server: FuzzServer) -> dict[str, Any]:
    answer = http(server.port, "GET", "/api/openapi.json")
    assert answer.status == 200
    return answer.json()  # type: ignore[no-any-return]


def is_public(document: dict[str, Any], method: str, path: str) -> bool:
    operation = document["paths"][path][method.lower()]
    return operation.get("security", document.get("security")) == []


# The document the server serves is built from the route table: the same one, built here, lets pytest
# list one test per operation (schemathesis' lazy fixture loader does not run under pytest 9);
# `test_the_server_serves_this_document` proves it is what the running server answers.
DOCUMENT = build_document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict(CONFIG))
FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def test_the_server_serves_this_document(document: dict[str, Any]) -> None:
    assert document == DOCUMENT


@schema.parametrize()
@FUZZ
def test_no_operation_answers_5xx(case: schemathesis.Case, server: FuzzServer) -> None:
    if (case.method, case.path) == WITH_ADMIN_TOKEN_EXCEPT:
        return
    headers = {**(case.headers or {}), **server.auth()}
    response = case.call_and_validate(base_url=server.base, headers=headers, checks=[not_a_server_error])
    SENT["authenticated"] += 1
    SENT[f"authenticated {response.status_code // 100}xx"] += 1
    REACHED.add((case.method.upper(), case.path))


@schema.parametrize()
@FUZZ
def test_without_a_token_every_private_api_operation_answers_401(case: schemathesis.Case, server: FuzzServer) -> None:
    for name in list(case.headers or {}):
        if name.lower() in ("authorization", "cookie"):
            del case.headers[name]  # type: ignore[union-attr]
    response = case.call(base_url=server.base)
    SENT["anonymous"] += 1
    SENT[f"anonymous {response.status_code // 100}xx"] += 1
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    if not case.path.startswith("/api/"):
        return
    documented = case.method.lower() in DOCUMENT["paths"][case.path]
    if documented and is_public(DOCUMENT, case.method, case.path):
        return
    # a method the path does not have (the coverage phase tries them) may also be refused as such
    expected = {401} if documented else {401, 405}
    assert response.status_code in expected, (case.method, case.formatted_path, response.status_code,
                                              response.text[:300])
    assert response.json()["error"]["code"] in ("unauthorized", "method_not_allowed")


def test_revoking_tokens_by_any_id_never_answers_5xx(server: FuzzServer) -> None:
    """`DELETE /api/tokens/{id}` on ids of every shape, with an admin token of its own."""
    for raw in ("999999", "2147483647", "2147483648", "0", "-1", "abc", "1e3", "%00", "%EF%BC%91", "9" * 40,
                "1", "2", "3"):  # the small ids last: one of them is this very token
        answer = http(server.port, "DELETE", f"/api/tokens/{raw}", headers=server.auth(server.spare_admin))
        assert answer.status < 500, (raw, answer.status, answer.body[:300])
        assert answer.status in (204, 400, 401, 403, 404, 405), (raw, answer.status, answer.body[:300])


def test_the_fuzzing_reached_every_operation_and_left_the_server_well(server: FuzzServer,
                                                                      document: dict[str, Any]) -> None:
    operations = {(method.upper(), path) for path, methods in document["paths"].items() for method in methods}
    if SENT:  # (run with the fuzzing above, not alone)
        assert REACHED >= operations - {WITH_ADMIN_TOKEN_EXCEPT}, operations - REACHED
        assert SENT["anonymous"] > len(operations), SENT
        print(f"{len(operations)} operations; requests sent: {dict(sorted(SENT.items()))}")
    assert server.healthy()
    assert server.log_problems() == [], server.log_problems()[:5]

