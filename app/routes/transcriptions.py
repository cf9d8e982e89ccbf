"""POST /v1/audio/transcriptions (and /inference/audio/transcriptions for the seed-era SDK) and
POST /v1/audio/translations (speech in any language -> English text)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from sse_starlette import EventSourceResponse

from app.render import CONTENT_TYPES, render_body
from app.routes.deps import ApiKeyDep, ServiceDep
from app.routing import Task
from app.service import Job, TranscriptionService
from app.upload import read_upload

router = APIRouter(tags=["audio"])

_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["model", "file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "model": {"type": "string"},
                        "chunking_strategy": {"type": "string", "default": "auto"},
                        "language": {"type": "string", "default": "auto"},
                        "response_format": {"type": "string", "default": "json"},
                        "stream": {"type": "boolean", "default": False},
                        "timeout": {"type": "number"},
                        "extra_body": {"type": "string"},
                    },
                }
            }
        },
    }
}


_TRANSLATION_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["model", "file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "model": {"type": "string"},
                        "prompt": {"type": "string", "description": "English text to continue"},
                        "response_format": {"type": "string", "default": "json"},
                        "temperature": {"type": "number"},
                    },
                }
            }
        },
    }
}


@router.post("/v1/audio/transcriptions", openapi_extra=_DOC)
@router.post("/inference/audio/transcriptions", include_in_schema=False)
async def create_transcription(request: Request, service: ServiceDep, _key: ApiKeyDep) -> Response:
    return await _answer(request, service, "transcribe")


@router.post("/v1/audio/translations", openapi_extra=_TRANSLATION_DOC)
async def create_translation(request: Request, service: ServiceDep, _key: ApiKeyDep) -> Response:
    return await _answer(request, service, "translate")


async def _answer(request: Request, service: TranscriptionService, task: Task) -> Response:
    upload = await read_upload(request, int(service.settings.max_upload_mb * (1 << 20)))
    job = await service.prepare(upload, task)
    # For the access log and metrics (not the job itself: the scope may outlive the request).
    request.state.model, request.state.audio_s = job.model_id, job.audio.duration_s
    if job.params.stream:
        return EventSourceResponse(_sse(service, job), ping=10)
    transcription = await service.transcribe(job)
    fmt = job.params.response_format
    if fmt == "text" and "sdk_version" in request.headers:
        # The AI Refinery SDK (it sends an sdk_version header) parses every answer as JSON.
        fmt = "json"
    body = render_body(transcription, fmt, service.settings.subtitles)
    return Response(body, media_type=CONTENT_TYPES[fmt])


async def _sse(service: TranscriptionService, job: Job) -> AsyncIterator[dict[str, str]]:
    """Events as SSE ``data:`` lines; ``[DONE]`` only after a successful ``done`` event."""
    event: dict[str, Any] = {}
    async for event in service.events(job):
        yield {"data": json.dumps(event, ensure_ascii=False)}
    if event.get("type") == "transcript.text.done":
        yield {"data": "[DONE]"}
