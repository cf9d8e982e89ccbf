"""Reading the multipart upload: size limit and read timeouts (enforced while the body streams in),
and the form."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import BinaryIO

import anyio
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ClientGone, InvalidRequest, UploadTimeout, UploadTooLarge, error_body
from app.schemas import TranscriptionParams, fold_form_fields, parse_params

# Room for the multipart framing and the text fields on top of the audio itself.
_FORM_OVERHEAD_BYTES = 1 << 20
# A text field (prompt, extra_body, ...) larger than this is refused by the form parser (400).
_MAX_FIELD_BYTES = 64 << 10


@dataclass(frozen=True, slots=True)
class Upload:
    params: TranscriptionParams
    file: BinaryIO  # the audio, spooled to a temporary file once over 1 MB (not held in memory)
    filename: str | None
    content_type: str | None


class BodyGuard:
    """ASGI middleware: a POST body over the size limit is refused as soon as it is known to be over,
    and one that stalls (no bytes for ``idle_timeout_s``, or not complete after ``total_timeout_s``)
    ends with 408 and a closed connection.

    A declared Content-Length is checked before reading; a chunked body is counted while it
    streams, so nobody can make the server spool an unbounded upload (vLLM shipped a CVE for
    checking only after reading).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, idle_timeout_s: float, total_timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes + _FORM_OVERHEAD_BYTES
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                # Outside the app's error handlers here, so answer directly.
                error = too_large(self.max_bytes)
                body = error_body(error.message, error.code, error.field)
                headers = {"Connection": "close"}
                await JSONResponse(body, status_code=error.status_code, headers=headers)(scope, receive, send)
                return
        received = 0
        deadline = time.monotonic() + self.total_timeout_s
        complete = False

        async def guarded() -> Message:
            nonlocal received, complete
            if complete:  # the body is in: what is left to hear is the client leaving
                return await receive()
            wait_s = min(self.idle_timeout_s, deadline - time.monotonic())
            try:
                with anyio.fail_after(max(wait_s, 0.0)):
                    message = await receive()
            except TimeoutError:
                raise UploadTimeout(
                    f"the upload stalled: no complete body within {self.idle_timeout_s:g} s of silence "
                    f"or {self.total_timeout_s:g} s in all"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(self.max_bytes)
                complete = not message.get("more_body", False)
            elif message["type"] == "http.disconnect":
                raise ClientGone("the client went away during the upload")
            return message

        await self.app(scope, guarded, send)


def too_large(max_bytes: int) -> UploadTooLarge:
    mb = max_bytes / (1 << 20)
    return UploadTooLarge(f"the upload is larger than this server's limit of {mb:g} MB", field="file")


@asynccontextmanager
async def read_upload(request: Request, max_bytes: int) -> AsyncIterator[Upload]:
    """Parse the multipart form into validated parameters and the audio file (open while in use)."""
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise InvalidRequest(
            "send the audio as multipart/form-data with a 'file' field and a 'model' field",
            field="file",
        )
    try:
        form = await request.form(max_files=1, max_fields=256, max_part_size=_MAX_FIELD_BYTES)
    except ClientDisconnect:
        raise ClientGone("the client went away during the upload") from None
    try:
        text_fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        params = parse_params(fold_form_fields(text_fields))
        if not files:
            raise InvalidRequest("field 'file' is required (the audio to transcribe)", field="file")
        upload = files[0]
        if upload.size is not None and upload.size > max_bytes:
            raise too_large(max_bytes)
        yield Upload(params, upload.file, upload.filename, upload.content_type)
    finally:
        await form.close()
