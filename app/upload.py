"""Reading the multipart upload: the size limit (enforced while the body streams in) and the form."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import InvalidRequest, UploadTooLarge, error_body
from app.schemas import TranscriptionParams, fold_form_fields, parse_params

# Room for the multipart framing and the text fields on top of the audio itself.
_FORM_OVERHEAD_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Upload:
    params: TranscriptionParams
    data: bytes
    filename: str | None
    content_type: str | None


class BodySizeLimit:
    """ASGI middleware: refuse a POST body over the limit as soon as it is known to be over.

    A declared Content-Length is checked before reading; a chunked body is counted while it
    streams, so nobody can make the server spool an unbounded upload (vLLM shipped a CVE for
    checking only after reading).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

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
                await JSONResponse(body, status_code=error.status_code)(scope, receive, send)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(self.max_bytes)
            return message

        await self.app(scope, counted, send)


def too_large(max_bytes: int) -> UploadTooLarge:
    mb = max_bytes / (1 << 20)
    return UploadTooLarge(f"the upload is larger than this server's limit of {mb:g} MB", field="file")


async def read_upload(request: Request, max_bytes: int) -> Upload:
    """Parse the multipart form into validated parameters and the audio bytes."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise InvalidRequest(
            "send the audio as multipart/form-data with a 'file' field and a 'model' field",
            field="file",
        )
    async with request.form(max_files=1, max_fields=256) as form:
        text_fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        params = parse_params(fold_form_fields(text_fields))
        if not files:
            raise InvalidRequest("field 'file' is required (the audio to transcribe)", field="file")
        upload = files[0]
        if upload.size is not None and upload.size > max_bytes:
            raise too_large(max_bytes)
        data = await upload.read()
        return Upload(params, data, upload.filename, upload.content_type)
