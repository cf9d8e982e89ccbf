"""Graceful drain on SIGTERM: keep listening, refuse new work, finish what is in flight, exit 0.

uvicorn's own SIGTERM handling closes the listening socket at once, so a load balancer sees
connection errors, and sse-starlette ends every stream as soon as uvicorn's ``should_exit`` is
set. ``DrainingServer`` takes the first SIGTERM (or Ctrl-C) instead: the app's ``Drain`` turns
readiness and new requests into 503s (the access middleware), and only once the requests in
flight are done, or ``drain_timeout_s`` has passed, does it hand over to uvicorn's shutdown.
A second signal stops at once.
"""

from __future__ import annotations

import logging
import time
from types import FrameType

import uvicorn

logger = logging.getLogger(__name__)


class Drain:
    """Whether the app is draining, and how many requests (not probes or scrapes) are in flight."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.in_flight = 0
        self.started: float | None = None  # time.monotonic() when draining began

    @property
    def draining(self) -> bool:
        return self.started is not None

    def start(self) -> None:
        if self.started is None:
            self.started = time.monotonic()

    def finished(self) -> bool:
        """Nothing left in flight, or out of time."""
        if self.started is None:
            return False
        return self.in_flight == 0 or time.monotonic() - self.started >= self.timeout_s


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first exit signal drains the app before shutting down."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: only flip state here, the main loop's tick does the rest. Not
        # recording the signal (as uvicorn does, to re-raise it after shutdown) exits with 0.
        if self.drain.draining or self.should_exit:
            super().handle_exit(sig, frame)
        else:
            self.drain.start()

    async def on_tick(self, counter: int) -> bool:
        if self.drain.draining and not self.should_exit:
            if not self._announced:
                self._announced = True
                logger.info(
                    "draining: %d requests in flight, up to %.0f s",
                    self.drain.in_flight,
                    self.drain.timeout_s,
                )
            if self.drain.finished():
                assert self.drain.started is not None
                logger.info(
                    "drained in %.2f s (%d requests still in flight)",
                    time.monotonic() - self.drain.started,
                    self.drain.in_flight,
                )
                self.should_exit = True
        return await super().on_tick(counter)
