"""An upload's size limit and read timeouts, enforced while the body streams in (before any route)."""

from __future__ import annotations

import time

import anyio
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ClientGone, UploadTimeout, UploadTooLarge, error_body

# Room for the multipart framing and the text fields on top of the audio itself.
_FORM_OVERHEAD_BYTES = 1 << 20


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
