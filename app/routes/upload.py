"""Reading a transcription request's multipart form: validated parameters and the audio file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request

from app.errors import ClientGone, InvalidRequest
from app.server.upload_limits import too_large
from app.transcription.params import Upload, fold_form_fields, parse_params

# A text field (prompt, extra_body, ...) larger than this is refused by the form parser (400).
MAX_FIELD_BYTES = 64 << 10


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
        form = await request.form(max_files=1, max_fields=256, max_part_size=MAX_FIELD_BYTES)
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
