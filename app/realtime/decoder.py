"""A live session's decoding: previews of the utterance being spoken, for deltas, and the final
decode of each committed one, for ``completed``.

A preview (see ``app.engine.preview``: a quick greedy decode, at most one at a time per session,
queued behind every final decode) runs every ``partial_interval_ms`` of new speech once the
utterance holds ``FIRST_PREVIEW_SAMPLES``; ``Partials`` picks the words to send. A final decode is
the HTTP path's decode of a chunk (beam search, temperature fallback, the previous utterances' text
as prompt); ``completed`` carries its transcript, which replaces the deltas. Both encode a short
window (10 s, where the audio fits: ~8x less encoder work than Whisper's 30 s on CPU). The final
decode starts early, once the silence after the speech holds ``segmenter.EARLY_QUIET_MS``, over
the audio so far (the committed audio adds only silence to it), and is dropped if the person
speaks again. Final decodes run in order on one task, so ``completed`` events come in the order
the utterances were spoken.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from app.audio.pcm import SAMPLE_RATE, Samples
from app.audio.vad import is_tonal
from app.config import Settings
from app.engine import DecodeOptions, DecodeResult
from app.errors import AsrError, ServerBusy
from app.models.registry import ModelRegistry
from app.realtime.capacity import LiveCapacity
from app.realtime.events import (
    ServerEvent,
    TranscriptionCompleted,
    TranscriptionDelta,
    TranscriptionFailed,
    TranscriptionFailure,
)
from app.realtime.protocol import SessionConfig
from app.realtime.segmenter import LiveSegmenter
from app.realtime.utterances import FIRST_PREVIEW_SAMPLES, Early, Final, Utterance, decode_options
from app.transcription.render import logprobs_json, usage

logger = logging.getLogger(__name__)

Emit = Callable[[ServerEvent], None]


class LiveDecoder:
    """Decodes for one session; ``emit`` sends its delta, completed and failed events."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        capacity: LiveCapacity,
        emit: Emit,
        config: SessionConfig,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.capacity = capacity
        self._emit = emit
        self.config = config
        self.model_id = ""
        self.language: str | None = None
        self._finals: asyncio.Queue[Final] = asyncio.Queue()
        self._backlog = 0  # samples committed and not yet decoded
        self._context = ""  # the text of the utterances so far (the next prompt)
        self._tasks: set[asyncio.Task[Any]] = set()

    def _options(self, *, final: bool) -> DecodeOptions:
        return decode_options(self.settings, self.config, self.language, self._context, final=final)

    async def _decode(
        self, audio: Samples, options: DecodeOptions, utterance: Utterance | None = None
    ) -> DecodeResult:
        async with self.registry.lease(self.model_id) as engine:
            future = engine.submit(audio, options)
            if utterance is not None:
                utterance.pending = future
            return await asyncio.wrap_future(future)

    def _track(self, task: asyncio.Task[Any]) -> None:
        """Keep the task until it ends (``close`` cancels it); a dropped early decode's failure is
        nobody's to report."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # --- the utterance being spoken -----------------------------------------------------------

    def heard(self, utterance: Utterance, segmenter: LiveSegmenter) -> None:
        """The open utterance grew: start its final decode early, or a preview."""
        audio = segmenter.settled()
        if audio is None:
            utterance.drop_early()
        elif utterance.early is None and not self._backlog:  # no earlier utterance still to decode:
            options = self._options(final=True)  # its text, the prompt, is known
            task = asyncio.create_task(self._decode(audio, options))
            self._track(task)
            utterance.early = Early(len(audio), options, task)
            if utterance.pending is not None:
                utterance.pending.cancel()  # a preview still queued would only delay it
        interval = self.settings.realtime.partial_interval_ms
        if utterance.decoding or not interval or utterance.early is not None:
            return  # (early: the person has stopped, the final decode is on its way)
        # A caption under way leaves the last preview slot to utterances with nothing sent yet: the
        # first words are the latency a person notices (see bench/README.md#live-transcription).
        limit = self.capacity.max_partials
        if limit > 1 and utterance.partials.sent:
            limit -= 1
        if self.capacity.partials >= limit:
            return
        if segmenter.speech_samples <= utterance.decoded_samples:
            return  # no speech since the last preview (a pause, or the silence at the end)
        audio = segmenter.audio()
        step = interval * SAMPLE_RATE // 1000
        if len(audio) < max(utterance.decoded_samples + step, FIRST_PREVIEW_SAMPLES):
            return
        utterance.decoding, utterance.decoded_samples = True, len(audio)
        self.capacity.partials += 1
        preview = asyncio.create_task(self._preview(utterance, audio))
        self._track(preview)
        preview.add_done_callback(self._preview_done)

    def _preview_done(self, task: asyncio.Task[None]) -> None:
        """Runs however the task ended, even cancelled before it started."""
        self.capacity.partials -= 1

    async def _preview(self, utterance: Utterance, audio: Samples) -> None:
        try:
            # Dropped at the commit (its engine future cancelled: the final decode has the whole
            # utterance) or at the close, the task ends cancelled, without a delta.
            transcript = await self._decode(audio, self._options(final=False), utterance)
        except Exception:
            logger.exception("preview failed")  # the final decode reports failures
            return
        finally:
            utterance.decoding = False
        if not utterance.closed:
            self._delta(utterance, utterance.partials.update(transcript.text, len(audio) / SAMPLE_RATE))

    def _delta(self, utterance: Utterance, delta: str) -> None:
        if delta:
            self._emit(
                TranscriptionDelta(item_id=utterance.item_id, content_index=0, delta=delta, logprobs=None)
            )

    # --- committed utterances -----------------------------------------------------------------

    def commit(self, utterance: Utterance, audio: Samples) -> None:
        """Queue the utterance's final decode (its preview is dropped if it has not started)."""
        utterance.closed = True
        if utterance.pending is not None:
            utterance.pending.cancel()
        self._backlog += len(audio)
        if self._backlog > self.settings.realtime.max_backlog_s * SAMPLE_RATE:
            raise SessionOverloaded(
                "the server is falling behind this session "
                f"({self._backlog / SAMPLE_RATE:.0f} s of audio waiting); "
                "reconnect later"
            )
        self._finals.put_nowait(Final(utterance, audio))

    async def run(self) -> None:
        """Decode committed utterances in order, forever (the route cancels it)."""
        while True:
            job = await self._finals.get()
            try:
                await self._final(job)
            finally:
                self._backlog -= len(job.audio)
                job.utterance.drop_early()  # unused: the audio or the prompt changed

    async def _final(self, job: Final) -> None:
        utterance, started = job.utterance, time.monotonic()
        try:
            early, options = utterance.early, self._options(final=True)
            if is_tonal(job.audio):
                transcript = DecodeResult((), self.language or "en", 1.0)
            elif early is not None and early.samples <= len(job.audio) and early.options == options:
                transcript = await early.task  # the audio without the last of the silence
            else:
                transcript = await self._decode(job.audio, options)
        except AsrError as exc:
            self._failed(utterance, exc.message, exc.code)
            return
        except Exception:
            logger.exception("final decode failed")
            self._failed(utterance, "the transcription failed on the server", "internal_error")
            return
        text = transcript.text
        self._delta(utterance, utterance.partials.finish(text))
        self._context = f"{self._context} {text}".strip()
        logprobs = [lp for s in transcript.segments for lp in s.logprobs]
        self._emit(
            TranscriptionCompleted(
                item_id=utterance.item_id,
                content_index=0,
                transcript=text,
                logprobs=logprobs_json(logprobs) if self.config.logprobs else None,
                usage=usage(len(job.audio) / SAMPLE_RATE),
            )
        )
        logger.debug("utterance %s decoded in %.2f s", utterance.item_id, time.monotonic() - started)

    def _failed(self, utterance: Utterance, message: str, code: str) -> None:
        failure = TranscriptionFailure(type="transcription_error", code=code, message=message, param=None)
        self._emit(TranscriptionFailed(item_id=utterance.item_id, content_index=0, error=failure))

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # Their ends are awaited, not raised (a cancelled close still propagates).
        await asyncio.gather(*tasks, return_exceptions=True)


class SessionOverloaded(ServerBusy):
    """The session's committed audio waits longer than ``max_backlog_s``: it is closed (1013)."""
