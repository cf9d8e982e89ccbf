"""WebSocket ``/v1/realtime?intent=transcription``: auth, limits, and the socket around a session.

Every refusal is an ``error`` event followed by a close with a code and a reason, never a bare drop:
1008 (no valid key, another intent, the session too long or idle), 1009 (a message too big), 1013 (too many
sessions, or the server falling behind), 1011 (a server fault).
"""

from __future__ import annotations

import asyncio
import hmac
import logging

import anyio
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from app.errors import AsrError, ServerBusy, Unauthorized
from app.realtime.capacity import LiveCapacity
from app.realtime.decoder import SessionOverloaded
from app.realtime.events import ErrorEvent, error_event, error_for
from app.realtime.protocol import BadClientEvent, parse_client_event
from app.realtime.session import RealtimeSession
from app.transcription.protocol import to_json
from app.transcription.service import TranscriptionService

logger = logging.getLogger(__name__)
router = APIRouter()

KEY_SUBPROTOCOL = "openai-insecure-api-key."  # how browsers (no WebSocket headers) send a key


_NO_KEY = (
    "a valid API key is required (Authorization: Bearer <key>, or the subprotocol "
    "openai-insecure-api-key.<key> from a browser)"
)


class _Close(Exception):
    def __init__(self, code: int, event: ErrorEvent) -> None:
        super().__init__(event.error.message)
        self.code = code
        self.event = event


def offered_key(websocket: WebSocket) -> str:
    """The key from ``Authorization: Bearer`` or from the ``openai-insecure-api-key.<key>`` subprotocol."""
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for protocol in websocket.scope.get("subprotocols", []):
        if protocol.startswith(KEY_SUBPROTOCOL):
            return str(protocol[len(KEY_SUBPROTOCOL) :])
    return ""


def _check(websocket: WebSocket, service: TranscriptionService, live: LiveCapacity) -> None:
    keys = service.settings.api_keys
    key = offered_key(websocket)
    if keys and not any(hmac.compare_digest(key, k) for k in keys):
        raise _Close(1008, error_event(_NO_KEY, Unauthorized.code))
    intent = websocket.query_params.get("intent", "transcription")
    if intent != "transcription":
        message = f"intent {intent!r} is not served here; use ?intent=transcription"
        raise _Close(1008, error_event(message, "invalid_request", param="intent"))
    if live.sessions >= live.max_sessions:
        message = f"the server is busy ({live.sessions} live sessions); retry later"
        raise _Close(1013, error_event(message, ServerBusy.code))


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    service: TranscriptionService = websocket.app.state.service
    live: LiveCapacity = websocket.app.state.realtime
    offered = websocket.scope.get("subprotocols", [])
    # A browser fails the handshake unless the server picks one of the subprotocols it offered.
    await websocket.accept(subprotocol="realtime" if "realtime" in offered else (offered or [None])[0])
    session: RealtimeSession | None = None
    try:
        _check(websocket, service, live)
        live.sessions += 1
        try:
            session = RealtimeSession(service.settings, service.registry, live)
            await _serve(websocket, session)
        finally:
            live.sessions -= 1
    except _Close as close:
        await _close(websocket, session, close)
    except WebSocketDisconnect:
        pass
    except Exception:
        logger.exception("realtime session failed")
        await _close(websocket, session, _Close(1011, error_event("internal server error", "internal_error")))
    finally:
        if session is not None:
            await session.close()


async def _serve(websocket: WebSocket, session: RealtimeSession) -> None:
    limits = session.settings.realtime
    limit, max_session_s = limits.max_message_kb * 1024, limits.max_session_s

    async def send() -> None:
        while True:
            event = await session.outbox.get()
            await websocket.send_text(to_json(event))
            session.outbox.task_done()

    async def receive() -> None:
        while True:
            with anyio.move_on_after(limits.idle_timeout_s) as idle:
                message = await websocket.receive()
            if idle.cancelled_caught:
                idle_for = f"nothing was received for {limits.idle_timeout_s:g} s; closing the session"
                raise _Close(1008, error_event(idle_for, "idle_timeout"))
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            text = message.get("text")
            if text is None:
                session.outbox.put_nowait(
                    error_event("send client events as JSON text messages", "invalid_request")
                )
                continue
            if len(text) > limit:
                raise _Close(1009, error_event(f"a message is limited to {limit} bytes", "message_too_big"))
            event_id = None
            try:
                event = parse_client_event(text)
                event_id = event.event_id
                await session.handle(event)
            except SessionOverloaded as exc:
                raise _Close(1013, error_for(exc, event_id)) from None
            except BadClientEvent as exc:
                session.outbox.put_nowait(error_for(exc, exc.event_id))
            except AsrError as exc:
                session.outbox.put_nowait(error_for(exc, event_id))

    background = [asyncio.create_task(send()), asyncio.create_task(session.run_finals())]
    try:
        await session.start()
        with anyio.move_on_after(max_session_s):
            await receive()
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
    raise _Close(
        1008, error_event(f"the session reached its limit of {max_session_s:g} s", "session_expired")
    )


async def _close(websocket: WebSocket, session: RealtimeSession | None, close: _Close) -> None:
    """Send what the session still has queued, then the error, then close with its code."""
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    try:
        with anyio.fail_after(5):
            while session is not None and not session.outbox.empty():
                await websocket.send_text(to_json(session.outbox.get_nowait()))
            await websocket.send_text(to_json(close.event))
            await websocket.close(close.code, close.event.error.message[:120])
    except (TimeoutError, WebSocketDisconnect, RuntimeError):
        logger.info("realtime client left before the close")
