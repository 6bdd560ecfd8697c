"""commhub's error tree.

    CommhubError                 base; carries an HTTP status and a machine-readable code
    ├── ConfigError              the configuration cannot be used (file, key, problem)
    ├── BadRequest (400)         malformed input
    │   └── ValidationFailed (422)  well-formed input that breaks a rule (per-field details)
    ├── Unauthorized (401)       no or unknown credentials
    ├── Forbidden (403)          known caller, not allowed
    ├── NotFound (404)
    ├── Conflict (409)
    ├── TooManyRequests (429)    too many failed credentials from one client; carries retry_after
    └── Unavailable (503)        the database cannot be reached or written; the caller should retry

The web layer renders every CommhubError as `{"error": {"code", "message", "details"?}}`;
the CLI prints its message and exits non-zero. Bad input therefore never becomes a 5xx.
"""

from __future__ import annotations

from typing import Any


class CommhubError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class ConfigError(CommhubError):
    code = "config_error"


class BadRequest(CommhubError):
    status = 400
    code = "bad_request"


class ValidationFailed(BadRequest):
    status = 422
    code = "validation_failed"


class Unauthorized(CommhubError):
    status = 401
    code = "unauthorized"


class Forbidden(CommhubError):
    status = 403
    code = "forbidden"


class NotFound(CommhubError):
    status = 404
    code = "not_found"


class Conflict(CommhubError):
    status = 409
    code = "conflict"


class TooManyRequests(CommhubError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(CommhubError):
    status = 503
    code = "unavailable"
    retry_after = 5
