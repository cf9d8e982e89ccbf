"""The line: how many requests are in progress, and how much decoded audio they hold.

A request takes a ``Ticket`` before its body is read, so reading, decoding, VAD, waiting for a
model slot and inference all count; a full line refuses at once with 503 and ``Retry-After``.
Decoded audio is charged to the ticket block by block while it is decoded, against one
server-wide budget, so concurrent uploads cannot multiply memory.
"""

from __future__ import annotations

import threading

from app.errors import AudioBudgetSpent, ServerBusy


class Admission:
    """Counts requests in progress (at most ``capacity``) and bytes of decoded audio held."""

    def __init__(self, capacity: int, budget_bytes: int) -> None:
        self.capacity = capacity
        self.budget_bytes = budget_bytes
        self.active = 0  # requests in progress
        self.held_bytes = 0  # decoded audio held by requests in progress (a gauge for /metrics)
        self._lock = threading.Lock()  # decoding charges from worker threads

    @property
    def has_room(self) -> bool:
        return self.active < self.capacity

    def enter(self) -> Ticket:
        """A ticket for a new request, or 503 while the line is full."""
        with self._lock:
            if self.active >= self.capacity:
                raise ServerBusy(f"the server is busy ({self.active} requests in progress); retry later")
            self.active += 1
        return Ticket(self)

    def _charge(self, ticket: Ticket, nbytes: int) -> None:
        with self._lock:
            if self.held_bytes + nbytes > self.budget_bytes:
                raise AudioBudgetSpent("the server is holding as much decoded audio as it can; retry later")
            self.held_bytes += nbytes
            ticket.held_bytes += nbytes

    def _leave(self, ticket: Ticket) -> None:
        with self._lock:
            self.active -= 1
            self.held_bytes -= ticket.held_bytes
            ticket.held_bytes = 0


class Ticket:
    """One request's place in the line; ``release`` (idempotent) frees it and its audio budget."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.held_bytes = 0
        self._released = False

    def charge(self, nbytes: int) -> None:
        """Count ``nbytes`` more decoded audio against the server's budget (503 when it is spent)."""
        self._admission._charge(self, nbytes)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._leave(self)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
