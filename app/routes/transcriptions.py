"""POST /v1/audio/transcriptions (and /inference/audio/transcriptions for the seed-era SDK) and
POST /v1/audio/translations (speech in any language -> English text)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from app.errors import ClientGone
from app.models.selection import Task
from app.routes.deps import AdmissionDep, ApiKeyDep, ServiceDep
from app.routes.openapi import transcription_responses
from app.routes.upload import read_upload
from app.server.admission import Admission
from app.transcription.protocol import StreamEvent, TextDone, to_json
from app.transcription.render import CONTENT_TYPES, render_body
from app.transcription.service import Job, TranscriptionService

router = APIRouter(tags=["audio"])
T = TypeVar("T")


def _form_doc(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI request body of a multipart upload with ``file``, ``model`` and ``fields``."""
    properties = {"file": {"type": "string", "format": "binary"}, "model": {"type": "string"}, **fields}
    schema = {"type": "object", "required": ["model", "file"], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


_DOC = _form_doc(
    {
        "chunking_strategy": {"type": "string", "default": "auto"},
        "language": {"type": "string", "default": "auto"},
        "response_format": {"type": "string", "default": "json"},
        "stream": {"type": "boolean", "default": False},
        "timeout": {"type": "number"},
        "extra_body": {"type": "string"},
        "known_speaker_names[]": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
        "known_speaker_references[]": {
            "type": "array",
            "items": {"type": "string", "description": "data:audio/...;base64,... (2-10 s)"},
            "maxItems": 8,
        },
    }
)
_TRANSLATION_DOC = _form_doc(
    {
        "prompt": {"type": "string", "description": "English text to continue"},
        "response_format": {"type": "string", "default": "json"},
        "temperature": {"type": "number"},
    }
)


@router.post("/v1/audio/transcriptions", openapi_extra=_DOC, responses=transcription_responses())
@router.post("/inference/audio/transcriptions", include_in_schema=False)
async def create_transcription(
    request: Request, service: ServiceDep, admission: AdmissionDep, _key: ApiKeyDep
) -> Response:
    return await _answer(request, service, admission, "transcribe")


@router.post("/v1/audio/translations", openapi_extra=_TRANSLATION_DOC, responses=transcription_responses())
async def create_translation(
    request: Request, service: ServiceDep, admission: AdmissionDep, _key: ApiKeyDep
) -> Response:
    return await _answer(request, service, admission, "translate")


async def _answer(
    request: Request, service: TranscriptionService, admission: Admission, task: Task
) -> Response:
    async with contextlib.AsyncExitStack() as held:  # what the request holds; a stream takes it over
        # In line from before the body is read: a full line answers 503 at once.
        ticket = held.enter_context(admission.enter())
        upload = await held.enter_async_context(
            read_upload(request, int(service.settings.max_upload_mb * (1 << 20)))
        )
        job = await service.prepare(upload, ticket, task)
        # For the access log and metrics (not the job itself: the scope may outlive the request);
        # a stream's length is known once its upload is decoded, as the feed stops.
        request.state.model = job.model_id
        held.callback(lambda: setattr(request.state, "audio_s", job.feed.duration_s))
        held.push_async_callback(job.feed.close)
        if job.params.stream:
            return _HeldEvents(held.pop_all(), _sse(service, job), ping=10)
        transcription = await _unless_client_leaves(request, service.transcribe(job))
    fmt = job.params.response_format
    if fmt == "text" and "sdk_version" in request.headers:
        # The AI Refinery SDK (it sends an sdk_version header) parses every answer as JSON.
        fmt = "json"
    body = render_body(transcription, fmt, service.settings.subtitles)
    return Response(body, media_type=CONTENT_TYPES[fmt])


class _HeldEvents(EventSourceResponse):
    """An SSE response that lets go of what its request holds (the decode of its upload, the
    upload, its place in line) however the stream ends."""

    def __init__(
        self, held: contextlib.AsyncExitStack, content: AsyncIterator[dict[str, str]], ping: int
    ) -> None:
        super().__init__(content, ping=ping)
        self.held = held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.held.aclose()


async def _unless_client_leaves(request: Request, work: Awaitable[T]) -> T:
    """Run a batch request's work, cancelling it (windows not yet started) if the client hangs up."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():
        # Its cleanup runs to the end and its error is not raised; a cancellation of ours still is.
        await asyncio.gather(task, return_exceptions=True)
        raise ClientGone("the client went away before its transcript was ready")
    return task.result()


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (the body is read: nothing else comes but the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _sse(service: TranscriptionService, job: Job) -> AsyncIterator[dict[str, str]]:
    """Events as SSE ``data:`` lines; ``[DONE]`` only after a successful ``done`` event."""
    event: StreamEvent | None = None
    async for event in service.events(job):
        yield {"data": to_json(event)}
    if isinstance(event, TextDone):
        yield {"data": "[DONE]"}
