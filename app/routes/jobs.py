"""Transcription jobs: POST /v1/audio/jobs (202 + Location), GET one (``?wait=S``), its result,
the list, cancel, delete. A job is visible only to the API key that made it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from app.errors import ClientGone, ErrorBody, InvalidRequest
from app.jobs import api
from app.jobs.protocol import JobDeleted, JobList, TranscriptionJob
from app.jobs.worker import JobWorker
from app.routes.deps import ApiKeyDep
from app.routes.upload import read_form
from app.transcription.form import fold_form_fields
from app.transcription.params import ResponseFormat

router = APIRouter(tags=["jobs"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413, 415, 429)
}
_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["model"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "url": {"type": "string", "description": "fetched by the server instead of file"},
                        "model": {"type": "string"},
                        "task": {"type": "string", "enum": ["transcribe", "translate"]},
                        "response_format": {"type": "string", "default": "json"},
                        "result_formats": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "more formats rendered from the same transcription "
                            "(result_formats[]=srt, or srt,text): GET .../result?response_format=srt",
                        },
                        "callback_url": {"type": "string"},
                        "metadata": {"type": "string", "description": "a JSON object of strings"},
                    },
                }
            }
        },
    }
}


def _worker(request: Request) -> JobWorker:
    worker: JobWorker = request.app.state.jobs
    return worker


@router.post(
    "/v1/audio/jobs", status_code=202, response_model=TranscriptionJob, responses=_ERRORS, openapi_extra=_FORM
)
async def create_job(
    request: Request,
    response: Response,
    key: ApiKeyDep,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
) -> TranscriptionJob:
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise InvalidRequest(
            "send the job as multipart/form-data with 'file' (or 'url') and 'model'", field="file"
        )
    try:
        form = await read_form(request)
    except ClientDisconnect:
        raise ClientGone("the client went away during the upload") from None
    try:
        fields = fold_form_fields((k, v) for k, v in form.multi_items() if isinstance(v, str))
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        upload = files[0] if files else None
        row = await api.submit(
            _worker(request),
            fields,
            None if upload is None else upload.file,
            None if upload is None else upload.filename,
            None if upload is None else upload.content_type,
            api.owner_of(key),
            idempotency_key,
        )
    finally:
        await form.close()
    response.headers["Location"] = f"/v1/audio/jobs/{row.id}"
    return api.to_wire(row)


@router.get("/v1/audio/jobs", response_model=JobList, responses=_ERRORS)
async def list_jobs(
    request: Request,
    key: ApiKeyDep,
    status: Literal["queued", "running", "completed", "failed", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> JobList:
    worker = _worker(request)
    owner = api.owner_of(key)
    store = await worker.open()
    cursor = None if after is None else (await api.find(worker, after, owner))[1]
    rows, more = await anyio.to_thread.run_sync(store.page, owner, status, limit, cursor)
    data = [api.to_wire(r) for r in rows]
    return JobList(
        data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=more
    )


@router.get("/v1/audio/jobs/{job_id}", response_model=TranscriptionJob, responses=_ERRORS)
async def get_job(
    request: Request, job_id: str, key: ApiKeyDep, wait: Annotated[float, Query(ge=0)] = 0
) -> TranscriptionJob:
    return api.to_wire(await api.wait_for(_worker(request), job_id, api.owner_of(key), wait))


@router.get(
    "/v1/audio/jobs/{job_id}/result",
    responses={200: {"description": "the body the synchronous endpoint answers"}, **_ERRORS},
)
async def get_result(
    request: Request,
    job_id: str,
    key: ApiKeyDep,
    response_format: Annotated[
        ResponseFormat | None, Query(description="its response_format (default) or a result_formats one")
    ] = None,
) -> Response:
    _, row = await api.find(_worker(request), job_id, api.owner_of(key))
    body, media_type = api.result_of(row, response_format)
    return Response(body, media_type=media_type)


@router.post("/v1/audio/jobs/{job_id}/cancel", response_model=TranscriptionJob, responses=_ERRORS)
async def cancel_job(request: Request, job_id: str, key: ApiKeyDep) -> TranscriptionJob:
    return api.to_wire(await api.cancel(_worker(request), job_id, api.owner_of(key)))


@router.delete("/v1/audio/jobs/{job_id}", response_model=JobDeleted, responses=_ERRORS)
async def delete_job(request: Request, job_id: str, key: ApiKeyDep) -> JobDeleted:
    await api.delete(_worker(request), job_id, api.owner_of(key))
    return JobDeleted(id=job_id)
