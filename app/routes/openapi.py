"""The wire's shapes in ``/openapi.json``: the routes that write their own answers (bodies in several
formats, SSE streams, error envelopes) name them here, and the app's OpenAPI document carries every
schema they refer to, plus the realtime server events (a WebSocket has no operation to hang them on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter

from app.errors import ErrorBody
from app.realtime.events import RealtimeServerEvent
from app.transcription.protocol import TranscriptionBody, TranscriptionStreamEvent

REF = "#/components/schemas/{model}"
_SCHEMAS: dict[str, dict[str, Any]] = {}  # component name -> schema, for every schema referred to


def schema_of(wire: Any) -> dict[str, Any]:
    """The JSON schema of a type as answers serialise it; the models it names become components."""
    schema = TypeAdapter(wire).json_schema(mode="serialization", ref_template=REF)
    for name, definition in schema.pop("$defs", {}).items():
        _register(name, definition)
    if isinstance(wire, type) and issubclass(wire, BaseModel):  # a named shape: a component
        _register(wire.__name__, schema)
        return {"$ref": REF.format(model=wire.__name__)}
    return schema


def _register(name: str, schema: dict[str, Any]) -> None:
    if _SCHEMAS.setdefault(name, schema) != schema:
        raise TypeError(f"two wire types are both named {name}: rename one")


TEXT = {"schema": {"type": "string"}}
ERRORS = {
    400: "the request is invalid (the field at fault is `param`)",
    401: "no valid API key",
    404: "no such model",
    408: "the upload stalled",
    413: "the upload is larger than the server takes",
    415: "the upload is not audio the server can decode",
    500: "the server failed",
    503: "the server is busy or draining: retry after `Retry-After` seconds, or elsewhere",
    504: "the request did not finish within its timeout",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    body = {"application/json": {"schema": schema_of(ErrorBody)}}
    return {status: {"description": ERRORS[status], "content": body} for status in statuses}


def transcription_responses() -> dict[int | str, dict[str, Any]]:
    """What POST /v1/audio/transcriptions and /v1/audio/translations answer, by ``response_format``
    (and ``stream``)."""
    ok = {
        "description": "json, verbose_json and diarized_json as JSON; text, srt and vtt as text; with "
        "stream=true, server-sent events (each data: line one event, data: [DONE] after a done event)",
        "content": {
            "application/json": {"schema": schema_of(TranscriptionBody)},
            "text/plain": TEXT,
            "application/x-subrip": TEXT,
            "text/vtt": TEXT,
            "text/event-stream": {"schema": schema_of(TranscriptionStreamEvent)},
        },
    }
    return {200: ok, **error_responses(400, 401, 404, 408, 413, 415, 500, 503, 504)}


def with_wire_schemas(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``, with the components the routes' own answers refer to added."""
    generate = app.openapi
    schema_of(RealtimeServerEvent)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in sorted(_SCHEMAS.items()):
                components.setdefault(name, schema)
            app.openapi_schema = document
        return app.openapi_schema

    return openapi
