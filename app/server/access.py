"""One pass around every HTTP request: its id, the drain gate, its metrics and its log line.

The request id is the client's ``X-Request-ID`` (when it is a sane token) or a new one, and is
echoed in the answer. While the server drains, every request but probes and scrapes gets 503
with ``Retry-After`` and ``Connection: close`` (a load balancer retries it elsewhere); the
others are counted in flight until their last byte (streams included), which is what the drain
waits for (WebSocket sessions too; new ones are closed with 1013, try again later). The
transcription route leaves the model and the audio's duration in ``request.state``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import RETRY_AFTER_S, Draining, error_body
from app.server.drain import Drain
from app.server.logs import key_values
from app.server.metrics import Metrics

logger = logging.getLogger("app.server.access")

# Answered while draining, not counted in flight, logged at debug level (probes come often).
PROBE_PATHS = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1").strip()
            if _REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex


class AccessMiddleware:
    def __init__(self, app: ASGIApp, *, drain: Drain, metrics: Metrics) -> None:
        self.app = app
        self.drain = drain
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(scope)
        probe = scope["path"] in PROBE_PATHS
        status = 500  # unless a response starts: an unhandled error answers 500 outside this

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        if self.drain.draining and not probe:
            refusal = Draining("the server is shutting down; retry (another replica will answer)")
            self.metrics.refusals.labels(refusal.reason).inc()
            headers = {"Retry-After": str(RETRY_AFTER_S), "Connection": "close"}
            response = JSONResponse(
                error_body(refusal.message, refusal.code), status_code=refusal.status_code, headers=headers
            )
            await response(scope, receive, send_with_id)
            self._record(scope, rid, status, started, probe)
            return
        if not probe:
            self.drain.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if not probe:
                self.drain.in_flight -= 1
            self._record(scope, rid, status, started, probe)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket session counts in flight like a stream; none starts while draining."""
        if self.drain.draining:
            await send({"type": "websocket.close", "code": 1013, "reason": "the server is shutting down"})
            return
        self.drain.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.in_flight -= 1

    def _record(self, scope: Scope, rid: str, status: int, started: float, probe: bool) -> None:
        duration_s = time.perf_counter() - started
        route_obj = scope.get("route")
        route = getattr(route_obj, "path", None) or "unmatched"  # never the raw path: unbounded
        state = scope.get("state") or {}
        model: str = state.get("model", "")
        audio_s: float | None = state.get("audio_s")
        self.metrics.requests.labels(scope["method"], route, model, str(status)).inc()
        self.metrics.request_duration.labels(route).observe(duration_s)
        fields: dict[str, Any] = {
            "request_id": rid,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_s": round(duration_s, 3),
        }
        if audio_s is not None:
            fields.update(model=model, audio_s=round(audio_s, 2))
            if audio_s > 0:
                rtf = duration_s / audio_s
                fields["rtf"] = round(rtf, 4)
                if 200 <= status < 300:
                    self.metrics.audio.labels(model).inc(audio_s)
                    self.metrics.real_time_factor.labels(model).observe(rtf)
        logger.log(logging.DEBUG if probe else logging.INFO, key_values(fields), extra={"fields": fields})
