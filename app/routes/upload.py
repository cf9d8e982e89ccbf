"""Reading a transcription request's multipart form: validated parameters and the audio file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from app.errors import ClientGone, InvalidRequest
from app.server.upload_limits import too_large
from app.transcription.form import fold_form_fields
from app.transcription.params import MAX_REFERENCE_CHARS, MAX_REFERENCES_CHARS, Upload, parse_params

# A text field (prompt, extra_body, ...) larger than this is refused by the form parser (400),
# except the fields that carry known speakers' references (data URLs of up to 10 s of audio).
MAX_FIELD_BYTES = 64 << 10
_PART_LIMITS = {
    "known_speaker_references[]": MAX_REFERENCE_CHARS,
    "known_speaker_references": MAX_REFERENCES_CHARS,  # all of them as a JSON list
    "extra_body": MAX_REFERENCES_CHARS,
}


class _FieldLimitedParser(MultiPartParser):
    """Starlette's multipart parser with a size limit per text field (by its name)."""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        if part.file is None:
            limit = _PART_LIMITS.get(part.field_name, MAX_FIELD_BYTES)
            if len(part.data) + end - start > limit:
                name = part.field_name[:64]
                raise InvalidRequest(
                    f"field '{name}' is larger than {limit >> 10} KB", field=name.removesuffix("[]")
                )
        super().on_part_data(data, start, end)


async def read_form(request: Request) -> FormData:
    """The request's form; multipart through ``_FieldLimitedParser``."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return await request.form(max_files=1, max_fields=256, max_part_size=MAX_FIELD_BYTES)
    async with aclosing(request.stream()) as stream:
        parser = _FieldLimitedParser(
            request.headers, stream, max_files=1, max_fields=256, max_part_size=MAX_REFERENCES_CHARS
        )
        try:
            return await parser.parse()
        except MultiPartException as exc:
            raise InvalidRequest(exc.message) from None


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
        form = await read_form(request)
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
