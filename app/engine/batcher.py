"""Inference threads per model that run whatever work is waiting as batches.

Decoding several windows at once is how a model keeps its hardware busy: on a GPU one thread runs
whatever is waiting, up to ``max_size``, as one batch; on CPU each of the model's workers has a
thread of its own that takes one window at a time (see ``app.engine.whisper``). Callers on any
thread (or the event loop) ``submit`` an item and get a ``concurrent.futures.Future``; an item
submitted with a lower ``priority`` number is taken before any waiting item with a higher one (a
live session's final decode before the previews of speech still being spoken).

Callers that submit a series of items, one after another (a lane of windows that each need the
previous one's text), announce themselves with ``lane()``. Each batch then waits (up to ``wait_s``)
for the next item of every open lane, so lanes of one upload and of concurrent uploads stay in step
and share batches instead of taking turns.

Background work (``priority >= BACKGROUND``: transcription jobs) can be kept off ``reserve`` of the
threads: it never starts a batch on them, and live work starts one there only while background work
runs. A live request then never waits for a job's window to finish (the model is given a worker
for each thread), and without jobs the model runs as many batches at once as before.

The threads run at a lower scheduling priority (nice +10), and so do the CTranslate2 threads they
create, so the event loop answers ``/health`` and new requests promptly while the model is busy.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

INFERENCE_NICENESS = 10
BACKGROUND = 2  # this priority and above: background work, kept off the reserved threads
_POLL_S = 0.005


def lower_thread_priority(niceness: int = INFERENCE_NICENESS) -> None:
    """Make the calling thread (and threads it creates later) yield the CPU to the event loop:
    ``niceness`` above the thread's own, so a server started under ``nice`` keeps the gap.

    Linux applies nice values per thread; raising one needs no privileges. Elsewhere this is a no-op.
    """
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + niceness))


@dataclass(slots=True)
class _Pending(Generic[Item, Result]):
    item: Item
    future: Future[Result]


class Batcher(Generic[Item, Result]):
    """Runs ``run_batch`` on dedicated low-priority threads over batches of submitted items.

    ``threads`` threads take batches from one queue, each running its batch while the others take
    the next ones, so a slow item (a window that needs Whisper's temperature fallback) holds up no
    one else's. ``setup`` runs first, on the first thread (load the model there, so that the
    threads the runtime starts inherit its priority); its exception is re-raised by the
    constructor. ``on_idle`` runs once nothing has been submitted for ``idle_s`` and no batch is
    running: not between the windows of a request in progress, whose lanes leave the queue empty
    for a moment after each batch. ``on_batch`` is told the size of each batch (for metrics).
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        *,
        setup: Callable[[], None] = lambda: None,
        on_idle: Callable[[], None] = lambda: None,
        on_batch: Callable[[int], None] = lambda size: None,
        max_size: int = 8,
        wait_s: float = 0.01,
        idle_s: float = 1.0,
        threads: int = 1,
        reserve: int = 0,
        name: str = "asr-batch",
    ) -> None:
        self._run_batch = run_batch
        self._on_idle = on_idle
        self._on_batch = on_batch
        self._idle_s = idle_s
        self._max_size = max_size
        self._wait_s = wait_s
        # (priority, submission number, item): the lowest priority first, in order within one;
        # None (closed) goes first of all.
        self._queue: queue.PriorityQueue[tuple[int, int, _Pending[Item, Result] | None]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._taking = threading.Lock()  # one thread at a time gathers a batch
        self._state = threading.Lock()
        self._lanes = 0  # open lanes: each will submit its next item soon
        self._running = 0  # batches in progress
        self._background = 0  # of which background work
        self._reserve = min(max(reserve, 0), max(threads, 1) - 1)
        self._size = max(threads, 1)
        self._threads: list[threading.Thread] = []
        for k in range(self._size):
            started: Future[None] = Future()
            thread = threading.Thread(
                target=self._serve,
                args=(setup if k == 0 else lambda: None, started),
                name=f"{name}-{k}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
            started.result()

    def submit(self, item: Item, priority: int = 0) -> Future[Result]:
        """Queue one item; cancel the future to drop it if it has not started."""
        future: Future[Result] = Future()
        self._queue.put((priority, next(self._order), _Pending(item, future)))
        return future

    def _stop_mark(self) -> None:
        self._queue.put((-1, next(self._order), None))

    @contextlib.contextmanager
    def lane(self) -> Iterator[None]:
        """Announce a caller that submits items one after another while the block runs."""
        with self._state:
            self._lanes += 1
        try:
            yield
        finally:
            with self._state:
                self._lanes -= 1

    def close(self) -> None:
        """Finish the batches in progress, then stop; items still queued are cancelled."""
        self._stop_mark()
        for thread in self._threads:
            thread.join(timeout=60)
        while True:
            try:
                _, _, pending = self._queue.get_nowait()
            except queue.Empty:
                return
            if pending is not None:
                pending.future.cancel()

    def _serve(self, setup: Callable[[], None], started: Future[None]) -> None:
        lower_thread_priority()
        try:
            setup()
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        while True:
            with self._taking:
                taken = self._next_batch()
            if taken is None:
                return
            batch, background = taken
            try:
                self._run(batch)
            finally:
                with self._state:
                    self._running -= 1
                    self._background -= background
            del batch, taken  # its items (views of whole uploads) are not kept while waiting for the next

    def _may_start(self, priority: int) -> bool:
        """Whether a batch led by an item of ``priority`` may start now (under ``_state``)."""
        if self._running < self._size - self._reserve:
            return True
        return priority < BACKGROUND and self._background > 0 and self._running < self._size

    def _next_batch(self) -> tuple[list[_Pending[Item, Result]], bool] | None:
        """The next batch, counted as running, and whether it is background work; None once closed
        (the close mark stays queued, so every thread sees it)."""
        while True:
            try:
                priority, order, first = self._queue.get(timeout=self._idle_s)
            except queue.Empty:
                if self._running:
                    continue
                self._on_idle()
                priority, order, first = self._queue.get()
            with self._state:
                allowed = first is None or self._may_start(priority)
            if allowed:
                break
            self._queue.put((priority, order, first))  # back in its place: a thread is reserved
            time.sleep(_POLL_S)
        if first is None:
            self._stop_mark()
            return None
        batch = [first]
        deadline = time.monotonic() + self._wait_s
        while len(batch) < self._max_size:
            # Wait for every open lane's next item (checking often, as lanes also close); then
            # take only what is already there.
            waiting = len(batch) < self._lanes and time.monotonic() < deadline
            try:
                if waiting:
                    _, _, pending = self._queue.get(
                        timeout=min(_POLL_S, max(deadline - time.monotonic(), 0.0))
                    )
                else:
                    _, _, pending = self._queue.get_nowait()
            except queue.Empty:
                if waiting:
                    continue
                break
            if pending is None:
                self._stop_mark()  # stop after this batch
                break
            batch.append(pending)
        background = priority >= BACKGROUND
        with self._state:
            self._running += 1
            self._background += background
        return batch, background

    def _run(self, batch: list[_Pending[Item, Result]]) -> None:
        live = [p for p in batch if p.future.set_running_or_notify_cancel()]
        if not live:
            return
        logger.debug("running a batch of %d", len(live))
        self._on_batch(len(live))
        try:
            results = self._run_batch([p.item for p in live])
        except BaseException as exc:  # a failed batch fails its items, never the thread
            logger.exception("batch of %d failed", len(live))
            results = [exc] * len(live)
        for pending, result in zip(live, results, strict=True):
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
