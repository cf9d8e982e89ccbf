"""Connections no client can pile up: a cap below the file-descriptor limit and a header timeout.

uvicorn closes idle keep-alive connections, but not one that sends half its headers and stops, and
once the process runs out of descriptors asyncio logs a traceback for every failed ``accept``. Here
each connection must complete its request line and headers within ``header_timeout_s`` (counted
from the connection or the previous answer), and connections past ``max_connections`` are answered
503 and closed at once, so descriptors are never exhausted and /health keeps answering.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.errors import error_body

logger = logging.getLogger(__name__)

# Descriptors kept for everything else (model files, log, temp files of uploads in progress).
_RESERVED_FDS = 64
# How long a refused connection may stay open to read its 503 before it is closed.
_REFUSED_LINGER_S = 1.0


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(max_connections: int, fd_limit: int) -> int:
    return max(1, min(max_connections, fd_limit - _RESERVED_FDS))


def _busy_response() -> bytes:
    body = json.dumps(
        error_body("the server has too many open connections; retry later", "server_busy")
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def guarded_protocol(max_connections: int, header_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the connection cap and the header timeout."""
    busy = _busy_response()
    refusals = Every(60.0)

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.server_state.connections) >= max_connections:
                if refusals.due():
                    logger.warning("refusing connections: %d are open", max_connections)
                # Answer, stop sending, and close shortly (at once would reset the client before it
                # reads the answer, if it has sent bytes that were never read).
                self._refused = True
                transport.write(busy)
                if transport.can_write_eof():
                    transport.write_eof()
                self.loop.call_later(_REFUSED_LINGER_S, transport.close)
                self.transport = transport
                return
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if not self._refused:
                super().connection_lost(exc)

        def eof_received(self) -> None:
            if self._refused:
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # discarded: this connection is only being told to come back later
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()  # the request line and headers are in

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()  # no request came in time: nothing to answer

    return GuardedH11Protocol


class Every:
    """True at most once per ``period_s``: log a recurring condition without flooding."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._last = -float("inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.period_s:
            self._last = now
            return True
        return False


class AcceptErrorFilter(logging.Filter):
    """asyncio logs a traceback for each failed ``accept`` when descriptors run out (hundreds a
    second); keep one line a minute."""

    def __init__(self) -> None:
        super().__init__()
        self._every = Every(60.0)

    def filter(self, record: logging.LogRecord) -> bool:
        if "accept" not in str(record.msg):
            return True
        if not self._every.due():
            return False
        reason = record.exc_info[1] if record.exc_info else None
        record.exc_info = None
        record.msg, record.args = "cannot accept connections (%s); retrying", (reason or "no descriptors",)
        return True
