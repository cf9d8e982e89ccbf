"""Typed errors with an HTTP status and a stable code, and the one error body every client gets.

The body is the seed's envelope (``text``/``success``/``error``/``confidence``) so both SDKs raise a
clear error, plus ``code`` for programs that branch on the kind of failure.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

# Seconds a client (or load balancer) is told to wait before retrying a 503.
RETRY_AFTER_S = 1


class AsrError(Exception):
    """Base of every error a request can end with; subclasses fix the status and code."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the body."""
        return {}


class InvalidRequest(AsrError):
    status_code = 400
    code = "invalid_request"


class Unauthorized(AsrError):
    status_code = 401
    code = "unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class ModelNotFound(AsrError):
    status_code = 404
    code = "model_not_found"


class UploadTimeout(AsrError):
    """The body stalled; the connection is closed, since the rest of it may never come."""

    status_code = 408
    code = "upload_timeout"

    @property
    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class UploadTooLarge(AsrError):
    status_code = 413
    code = "upload_too_large"


class UnsupportedAudio(AsrError):
    """The bytes are not audio we can decode (a client's fault, unlike an engine failure)."""

    status_code = 415
    code = "unsupported_audio"


class ServerBusy(AsrError):
    """A refusal to take more work now; another replica (or a retry after ``RETRY_AFTER_S``) may.

    ``reason`` labels the refusal in the metrics.
    """

    status_code = 503
    code = "server_busy"
    reason = "capacity"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER_S)}


class AudioBudgetSpent(ServerBusy):
    """Requests in progress hold as much decoded audio as the server allows (``audio_budget_mb``)."""

    reason = "audio_budget"


class Draining(ServerBusy):
    """The server is shutting down: it finishes what it has and takes nothing new."""

    code = "draining"
    reason = "draining"


class NotFound(AsrError):
    status_code = 404
    code = "not_found"


class Conflict(AsrError):
    """The resource is not in a state that allows this (a job's result before it is done, an
    idempotency key reused with another request)."""

    status_code = 409
    code = "conflict"


class TooManyJobs(AsrError):
    """The job queue is full (``jobs.max_queued``)."""

    status_code = 429
    code = "too_many_jobs"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "30"}


class RequestTimeout(AsrError):
    status_code = 504
    code = "timeout"


class ClientGone(AsrError):
    """The client disconnected: nobody reads the answer (nginx's 499), logged in one line."""

    status_code = 499
    code = "client_closed_request"


Absent = SkipJsonSchema[None]  # the None of an ``absent_if_none`` field: not a value on the wire


def _is_none(value: object) -> bool:
    return value is None


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def absent_if_none(description: str) -> Any:
    """A wire field left out of the answer (not sent as ``null``) while it is ``None``: declare it
    ``T | Absent``, and the OpenAPI document shows it as an optional ``T``."""
    return Field(None, exclude_if=_is_none, description=description, json_schema_extra=_no_default)


class ErrorBody(BaseModel):
    """The body of every non-2xx answer: the seed's envelope, plus ``code`` (and ``param``, the
    field at fault, when there is one)."""

    text: None
    success: Literal[False]
    error: str = Field(description="what went wrong, for a person")
    confidence: None
    code: str = Field(description="the kind of failure, for a program: invalid_request, server_busy, ...")
    param: str | Absent = absent_if_none("the request field at fault")


def error_body(message: str, code: str, field: str | None = None) -> dict[str, Any]:
    """The error envelope of a non-2xx answer, as JSON-ready data."""
    body = ErrorBody(text=None, success=False, error=message, confidence=None, code=code, param=field)
    return body.model_dump()


def shown(value: str, limit: int = 64) -> str:
    """A client's value quoted in a message, cut so that no answer echoes a huge field back."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
