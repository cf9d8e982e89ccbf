"""What the jobs routes do: check a submission as the synchronous endpoint would, store its audio
and queue it; read, list, wait for, cancel and delete jobs, each visible only to its owner."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, BinaryIO

import anyio.to_thread

from app.audio.decode import check_audio
from app.errors import Conflict, InvalidRequest, NotFound, TooManyJobs
from app.jobs.files import sha256_of
from app.jobs.protocol import FINISHED, JobError, JobProgress, TranscriptionJob, WebhookDelivery
from app.jobs.store import JobRow, JobStore, new_id
from app.jobs.urls import check_reachable, redact
from app.jobs.worker import JobWorker
from app.transcription.languages import to_whisper
from app.transcription.params import RESPONSE_FORMATS, TranscriptionParams, parse_params
from app.transcription.render import CONTENT_TYPES

JOB_FIELDS = ("task", "url", "callback_url", "metadata", "result_formats")
_POLL_S = 1.0  # a waiting request's reads of a job that another server may be running


def owner_of(api_key: str | None) -> str:
    """Who a job belongs to: a hash of the API key that made it ("" without keys)."""
    return "" if api_key is None else hashlib.sha256(api_key.encode()).hexdigest()[:32]


async def submit(
    worker: JobWorker,
    fields: dict[str, Any],
    file: BinaryIO | None,
    filename: str | None,
    content_type: str | None,
    owner: str,
    idempotency_key: str | None,
) -> JobRow:
    """Check everything that can be checked before queueing (the same 4xx as the synchronous
    endpoint), then store the audio and the job."""
    extras = {k: fields.pop(k) for k in JOB_FIELDS if k in fields}
    task = _text(extras.get("task"), "task") or "transcribe"
    if task not in {"transcribe", "translate"}:
        raise InvalidRequest("task: must be 'transcribe' or 'translate'", field="task")
    params = parse_params(fields)
    if params.stream:
        raise InvalidRequest(
            "stream: a job's result is one body; use the synchronous endpoint to stream", field="stream"
        )
    worker.service.registry.resolve(params.model)
    to_whisper(params.language)
    kept = result_formats(extras.get("result_formats"), params)
    jobs = worker.jobs
    url = _text(extras.get("url"), "url")
    callback = _text(extras.get("callback_url"), "callback_url")
    metadata = _metadata(extras.get("metadata"), jobs.max_metadata_bytes)
    if (file is None) == (url is None):
        raise InvalidRequest("send the audio as 'file' or give its 'url' (one of them)", field="file")
    if url is not None:
        await check_reachable(url, "url", jobs.allow_private_urls)
    if callback is not None:
        await check_reachable(callback, "callback_url", jobs.allow_private_urls)
    if file is not None:
        pcm = worker.service.pcm_format(params)
        await anyio.to_thread.run_sync(lambda: check_audio(file, content_type=content_type, pcm=pcm))
    digest = "" if file is None else await anyio.to_thread.run_sync(sha256_of, file)
    request: dict[str, Any] = {"params": params.model_dump(mode="json"), "task": task, "url": url}
    request |= {"callback": callback, "metadata": metadata, "audio": digest}
    if kept:  # absent otherwise, so that a job made before result_formats keeps its request's hash
        request["result_formats"] = kept
    request_hash = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    store = await worker.open()
    if idempotency_key is not None:
        earlier = await anyio.to_thread.run_sync(store.by_idempotency_key, owner, idempotency_key)
        if earlier is not None:
            return _same_request(earlier, request_hash)
    if await anyio.to_thread.run_sync(store.count, "queued") >= jobs.max_queued:
        raise TooManyJobs(f"the job queue is full ({jobs.max_queued} jobs waiting); retry later")
    job_id = new_id("job")
    if file is not None:
        await anyio.to_thread.run_sync(worker.files.save, job_id, file, store)
    row = JobRow(
        id=job_id,
        owner=owner,
        status="queued",
        created_at=time.time(),
        task=task,
        model=params.model,
        response_format=params.response_format,
        params=params.model_dump_json(),
        metadata=json.dumps(metadata),
        filename=filename if file is not None else None,
        content_type=content_type if file is not None else None,
        source_url=url,
        callback_url=callback,
        idem_key=idempotency_key,
        idem_hash=request_hash,
        results=json.dumps(dict.fromkeys(kept)) if kept else None,
    )
    stored = await anyio.to_thread.run_sync(store.insert, row)
    if stored.id != job_id:  # the same key, submitted at the same time
        worker.files.delete(job_id)
        await anyio.to_thread.run_sync(store.delete, job_id)  # the audio it stored
        return _same_request(stored, request_hash)
    worker.wake()
    return stored


def result_formats(value: object, params: TranscriptionParams) -> list[str]:
    """The formats a job keeps besides its ``response_format``, each rendered from the same
    transcription (a list, or names separated by commas); diarized_json only where it diarizes."""
    if value is None:
        return []
    names = [n for n in (value if isinstance(value, list) else [value]) if isinstance(n, str)]
    if len(names) != (len(value) if isinstance(value, list) else 1):
        raise InvalidRequest("result_formats: a list of response formats", field="result_formats")
    kept = [f for f in dict.fromkeys(p.strip() for n in names for p in n.split(",")) if f]
    unknown = [f for f in kept if f not in RESPONSE_FORMATS]
    if unknown:
        choices = ", ".join(RESPONSE_FORMATS)
        message = f"result_formats: unknown {', '.join(unknown)}; one of {choices}"
        raise InvalidRequest(message, field="result_formats")
    if "diarized_json" in kept and not params.wants_speakers:
        raise InvalidRequest(
            "result_formats: diarized_json needs speakers: set diarize=true", field="result_formats"
        )
    return [f for f in kept if f != params.response_format]


def _same_request(earlier: JobRow, request_hash: str) -> JobRow:
    """The job an Idempotency-Key made before, if this is the same request (409 otherwise)."""
    if earlier.idem_hash != request_hash:
        raise Conflict("Idempotency-Key: already used for a different request")
    return earlier


def _text(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: must be a string", field=field)
    return value.strip() or None


def _metadata(value: object, max_bytes: int) -> dict[str, str]:
    """A JSON object of strings, at most ``max_bytes`` as JSON."""
    if value is None:
        return {}
    if isinstance(value, str):
        if len(value) > max_bytes:
            raise InvalidRequest(f"metadata: larger than {max_bytes} bytes", field="metadata")
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise InvalidRequest("metadata: not valid JSON", field="metadata") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidRequest("metadata: must be a JSON object of strings", field="metadata")
    if len(json.dumps(value)) > max_bytes:
        raise InvalidRequest(f"metadata: larger than {max_bytes} bytes", field="metadata")
    return value


async def find(worker: JobWorker, job_id: str, owner: str) -> tuple[JobStore, JobRow]:
    """The owner's job (404 for another's: its existence is not revealed)."""
    store = await worker.open()
    row = await anyio.to_thread.run_sync(store.get, job_id)
    if row is None or row.owner != owner:
        raise NotFound(f"no job {job_id!r}")
    return store, row


async def wait_for(worker: JobWorker, job_id: str, owner: str, wait_s: float) -> JobRow:
    """The job, once it has ended or ``wait_s`` has passed: read again whenever a job this server
    runs ends, else every ``_POLL_S`` (another server may run it)."""
    deadline = time.monotonic() + min(wait_s, worker.jobs.max_wait_s)
    while True:
        _, row = await find(worker, job_id, owner)
        if row.status in FINISHED or time.monotonic() >= deadline:
            return row
        await worker.any_ended(min(_POLL_S, max(deadline - time.monotonic(), 0.0)))


async def cancel(worker: JobWorker, job_id: str, owner: str) -> JobRow:
    store, row = await find(worker, job_id, owner)
    if row.status in FINISHED:
        return row
    hours = worker.jobs.retention_hours
    updated = await anyio.to_thread.run_sync(lambda: store.cancel(job_id, time.time(), hours * 3600))
    if updated is not None and updated.status == "cancelled":
        worker.files.delete(job_id)
    worker.cancel_here(job_id)
    worker.wake()
    worker.announce_end()
    return updated or row


async def delete(worker: JobWorker, job_id: str, owner: str) -> None:
    store, _ = await find(worker, job_id, owner)
    worker.cancel_here(job_id)
    await anyio.to_thread.run_sync(store.delete, job_id)
    worker.files.delete(job_id)


def result_of(row: JobRow, response_format: str | None) -> tuple[str, str]:
    """A completed job's body and its content type: in its ``response_format``, or in one of its
    ``result_formats``."""
    if row.status != "completed" or row.result is None:
        why = f": {row.error_message}" if row.error_message else ""
        raise Conflict(f"job {row.id} is {row.status}, not completed{why}")
    if response_format is None or response_format == row.response_format:
        return row.result, row.result_type or CONTENT_TYPES[row.response_format]
    kept: dict[str, str] = json.loads(row.results or "{}")
    if response_format not in kept:
        formats = ", ".join([row.response_format, *kept])
        raise InvalidRequest(
            f"response_format: job {row.id} kept {formats}; ask for more at submission with result_formats",
            field="response_format",
        )
    return kept[response_format], CONTENT_TYPES[response_format]


def to_wire(row: JobRow) -> TranscriptionJob:
    def seconds(t: float | None) -> int | None:
        return None if t is None else int(t)

    error = None if row.error_code is None else JobError(code=row.error_code, message=row.error_message or "")
    return TranscriptionJob(
        id=row.id,
        status=row.status,  # type: ignore[arg-type]
        task=row.task,  # type: ignore[arg-type]
        model=row.model,
        response_format=row.response_format,
        result_formats=list(json.loads(row.results or "{}")),
        created_at=int(row.created_at),
        started_at=seconds(row.started_at),
        finished_at=seconds(row.finished_at),
        expires_at=seconds(row.expires_at),
        progress=JobProgress(done_s=row.done_s, total_s=row.total_s),
        duration=row.total_s,
        error=error,
        metadata=json.loads(row.metadata),
        filename=row.filename,
        url=None if row.source_url is None else redact(row.source_url),
        callback_url=None if row.callback_url is None else redact(row.callback_url),
        deliveries=[WebhookDelivery.model_validate(d) for d in json.loads(row.deliveries)],
    )
