"""The worker: claims queued jobs (up to ``jobs.max_running``), runs each through the
``TranscriptionService`` on its stored audio, and keeps the rendered body; renews each claim and
records progress while it runs; makes the webhook deliveries that are due; deletes expired jobs.

A job stops when its cancel is asked for (seen at the next heartbeat, or at once on this server:
the windows not yet started are dropped), or when this server lost its claim (it writes nothing).
On shutdown running jobs go back to the queue; after a crash their claims expire and they run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio.to_thread

from app.config import Settings
from app.errors import AsrError, ServerBusy
from app.jobs.database import connect
from app.jobs.files import AudioFiles
from app.jobs.sources import fetch_audio
from app.jobs.store import JobRow, JobStore
from app.jobs.webhooks import Webhooks
from app.models.selection import Task
from app.server.admission import Admission, Ticket
from app.transcription.params import TranscriptionParams, Upload
from app.transcription.render import CONTENT_TYPES, render_body
from app.transcription.result import ChunkResult
from app.transcription.service import TranscriptionService

logger = logging.getLogger(__name__)
_PURGE_EVERY_S = 60.0
_COUNT_EVERY_S = 5.0  # the jobs gauges' refresh


@dataclass
class _Progress:
    done_s: float = 0.0
    total_s: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    stop: Literal["cancel", "lost"] | None = None
    ending: bool = False  # the job is writing its end: a heartbeat still in flight must not stop it

    def update(self, result: ChunkResult) -> None:
        self.done_s = round(result.chunk.start_s + result.chunk.duration_s, 3)
        self.changed.set()


class JobWorker:
    def __init__(self, settings: Settings, service: TranscriptionService, admission: Admission) -> None:
        self.metrics = service.metrics
        self.settings = settings
        self.jobs = settings.jobs
        self.service = service
        self.admission = admission
        self.files = AudioFiles(self.jobs.data_dir, in_database=self.jobs.database_url is not None)
        self.webhooks = Webhooks(settings.jobs, self.metrics)
        self.store: JobStore | None = None
        self._wake = asyncio.Event()
        self._end_seen = asyncio.Event()  # set (and replaced) whenever a job here ends
        self._opening = asyncio.Lock()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._states: dict[str, _Progress] = {}
        self._delivering: set[asyncio.Task[None]] = set()
        self._beats: set[asyncio.Task[None]] = set()  # awaited on stop: none touches a closed store
        self._loop: asyncio.Task[None] | None = None
        self._stopping = False
        self._purged_at = self._counted_at = 0.0

    async def start(self) -> None:
        """Run the queue: at once when there is a database (made by the first job, here or on
        another server sharing the data directory), else from when one appears. PostgreSQL is
        connected at once, so a wrong database_url stops the start-up."""
        if self.jobs.database_url is not None:
            await self.open()
        self._loop = asyncio.create_task(self._run_loop())

    async def open(self) -> JobStore:
        async with self._opening:
            if self.store is None:
                jobs = self.jobs
                db = await anyio.to_thread.run_sync(
                    connect, jobs.database_url, jobs.data_dir, jobs.database_pool_size
                )
                self.store = await anyio.to_thread.run_sync(JobStore, db)
                self.wake()
        return self.store

    async def stop(self) -> None:
        self._stopping = True
        running = (*self._running.values(), *self._delivering, *self._beats)
        tasks = [t for t in (self._loop, *running) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.webhooks.close()
        if self.store is not None:
            self.store.close()

    def wake(self) -> None:
        self._wake.set()

    def announce_end(self) -> None:
        """Wake the requests waiting for a job to end (each reads its own job again)."""
        self._end_seen.set()
        self._end_seen = asyncio.Event()

    async def any_ended(self, timeout_s: float) -> None:
        """Return once a job ends on this server, or after ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._end_seen.wait(), timeout_s)

    def cancel_here(self, job_id: str) -> None:
        """Stop the job now if this server runs it (another server's sees it at its next heartbeat)."""
        task, state = self._running.get(job_id), self._states.get(job_id)
        if task is not None and state is not None:
            state.stop = "cancel"
            task.cancel()

    async def _run_loop(self) -> None:
        while True:
            try:
                await self._tick()
            except Exception:
                logger.exception("jobs: the queue could not be read")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._beat_s)
            self._wake.clear()

    @property
    def _beat_s(self) -> float:
        return min(self.jobs.lease_s / 3, 1.0)

    async def _tick(self) -> None:
        if self.store is None and (self.jobs.database_url is not None or JobStore.exists(self.jobs.data_dir)):
            await self.open()
        store = self.store
        if store is None:
            return
        now = time.time()
        if now - self._counted_at > _COUNT_EVERY_S:
            self._counted_at = now
            counts, oldest = await anyio.to_thread.run_sync(store.stats, now)
            for status in ("queued", "running", "completed", "failed", "cancelled"):
                self.metrics.jobs.labels(status).set(counts.get(status, 0))
            self.metrics.oldest_queued.set(oldest)
        if now - self._purged_at > _PURGE_EVERY_S:
            self._purged_at = now
            for old in await anyio.to_thread.run_sync(store.expired, now):
                self.files.delete(old.id)
                await anyio.to_thread.run_sync(store.delete, old.id)
        hold_s = self.jobs.webhook_timeout_s * 2
        for due in await anyio.to_thread.run_sync(
            store.claim_webhooks, now, hold_s, self.jobs.webhook_url is not None
        ):
            task = asyncio.create_task(self.webhooks.deliver(store, due))
            self._delivering.add(task)
            task.add_done_callback(self._delivering.discard)
        while len(self._running) < self.jobs.max_running and not self._stopping:
            row = await anyio.to_thread.run_sync(lambda: store.claim(time.time(), self.jobs.lease_s))
            if row is None:
                break
            logger.info("jobs: running %s (attempt %d)", row.id, row.attempt)
            task = asyncio.create_task(self._run(store, row))
            self._running[row.id] = task
            task.add_done_callback(functools.partial(self._ended, row.id))

    def _ended(self, job_id: str, _: object) -> None:
        self._running.pop(job_id, None)
        self._states.pop(job_id, None)
        self.wake()

    async def _run(self, store: JobStore, row: JobRow) -> None:
        state = self._states[row.id] = _Progress()
        started = time.monotonic()
        me = asyncio.current_task()
        assert me is not None
        beat = asyncio.create_task(self._heartbeat(store, row, state, me))
        self._beats.add(beat)
        beat.add_done_callback(self._beats.discard)
        values: dict[str, Any]
        try:
            values = await self._execute(store, row, state)
        except asyncio.CancelledError:
            if self._stopping:  # back to the queue for the next start (or another server)
                await anyio.to_thread.run_sync(store.release, row)
                raise
            if state.stop == "lost":
                logger.warning("jobs: %s was taken over; its result is not written", row.id)
                return
            if state.stop != "cancel":
                raise
            values = {"status": "cancelled"}
        except ServerBusy:  # the decoded-audio budget is spent for now: the job waits its turn again
            await asyncio.sleep(self._beat_s)
            await anyio.to_thread.run_sync(store.release, row)
            return
        except AsrError as exc:
            values = {"status": "failed", "error_code": exc.code, "error_message": exc.message}
        except Exception:
            logger.exception("jobs: %s failed", row.id)
            values = {"status": "failed", "error_code": "internal_error", "error_message": "the job failed"}
        finally:
            state.ending = True
            beat.cancel()
        values |= {"done_s": state.done_s, "total_s": state.total_s}
        self.metrics.job_duration.labels(values["status"]).observe(time.monotonic() - started)
        hours = self.jobs.retention_hours
        written = await anyio.to_thread.run_sync(
            lambda: store.finish(row, time.time(), hours * 3600, **values)
        )
        self.files.delete(row.id)
        self.announce_end()
        logger.info(
            "jobs: %s %s%s", row.id, values["status"], "" if written else " (claim lost: not written)"
        )

    async def _execute(self, store: JobStore, row: JobRow, state: _Progress) -> dict[str, Any]:
        params = TranscriptionParams.model_validate_json(row.params)
        kept: list[str] = list(json.loads(row.results)) if row.results is not None else []
        asked = params.timestamp_granularities
        if {"srt", "vtt"} & set(kept) and "word" not in asked:  # their cues are cut at words
            params = params.model_copy(update={"timestamp_granularities": [*asked, "word"]})
        content_type = row.content_type
        if row.source_url is not None and not await anyio.to_thread.run_sync(self.files.has, row.id, store):
            content_type = await fetch_audio(row.source_url, self.files, row.id, self.settings)
        path = await anyio.to_thread.run_sync(self.files.local, row.id, store)
        ticket = await self._ticket()
        with ticket, path.open("rb") as audio:
            task: Task = "translate" if row.task == "translate" else "transcribe"
            upload = Upload(params, audio, row.filename, content_type, background=True)
            job = await self.service.prepare(upload, ticket, task)
            try:
                state.total_s = job.feed.duration_s
                state.changed.set()
                transcription = await self.service.transcribe(job, state.update)
            finally:
                await job.feed.close()
        state.done_s = state.total_s or state.done_s
        # Each format as its own request would have it: verbose_json lists words only where asked.
        listed = "word" in asked
        if transcription.words != listed:
            transcription = dataclasses.replace(transcription, words=listed)
        fmt, layout = params.response_format, self.settings.subtitles
        values = {"status": "completed", "result": render_body(transcription, fmt, layout)}
        if kept:  # result_formats, from the same transcription
            values["results"] = json.dumps({f: render_body(transcription, f, layout) for f in kept})
        return values | {"result_type": CONTENT_TYPES[fmt]}

    async def _ticket(self) -> Ticket:
        """A place in the request line; a job waits for one (behind nobody: it just retries)."""
        while True:
            try:
                return self.admission.enter()
            except ServerBusy:
                await asyncio.sleep(0.5)

    async def _heartbeat(
        self, store: JobStore, row: JobRow, state: _Progress, job: asyncio.Task[None]
    ) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.changed.wait(), self._beat_s)
            state.changed.clear()
            lease = time.time() + self.jobs.lease_s
            beat = await anyio.to_thread.run_sync(store.heartbeat, row, lease, state.done_s, state.total_s)
            if (not beat.owned or beat.cancel) and not state.ending:
                state.stop = "cancel" if beat.owned else "lost"
                job.cancel()
                return
