"""One live transcription session: client events in, server events out through ``outbox``.

Audio is resampled to 16 kHz as it arrives. With ``server_vad`` the segmenter finds utterances;
while one is open, its audio so far is previewed (see ``app.engine.preview``: a quick greedy decode,
at most one at a time per session, queued behind every final decode) for append-only deltas, once
it holds a second of audio. Once it closes it is committed and decoded like the HTTP path decodes a
chunk (beam search, temperature fallback, the previous utterances' text as prompt); that decode
starts early, as soon as the silence after the speech holds the suffix padding (the audio to commit
is known then), and is dropped if the person speaks again. Final decodes run in order on one task,
so ``completed`` events come in the order the utterances were spoken. With ``turn_detection: null``
the client commits the buffer itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import numpy as np
import soxr

from app.audio import SAMPLE_RATE, Samples
from app.config import Settings
from app.engine import DecodeOptions, Transcript
from app.errors import AsrError, InvalidRequest, ServerBusy
from app.languages import to_whisper
from app.realtime.decoding import FIRST_PREVIEW_SAMPLES, Early, Final, LiveCapacity, Utterance, decode_options
from app.realtime.protocol import (
    BetaTranscriptionSession,
    ClientEvent,
    SessionConfig,
    TranscriptionSession,
    new_id,
    server_event,
    session_json,
)
from app.realtime.segmenter import LiveSegmenter, SpeechStarted, SpeechStopped, chunking_options
from app.registry import ModelRegistry
from app.render import logprobs_json
from app.routing import plan_route
from app.vad import is_tonal

logger = logging.getLogger(__name__)


class RealtimeSession:
    """The state machine of one connection (the route owns the socket and the limits)."""

    def __init__(self, settings: Settings, registry: ModelRegistry, capacity: LiveCapacity) -> None:
        self.settings = settings
        self.registry = registry
        self.capacity = capacity
        self.id = new_id("sess")
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.config = SessionConfig(model=settings.default_model)
        self._model_id = registry.resolve(self.config.model)
        self._language: str | None = None
        self._finals: asyncio.Queue[Final] = asyncio.Queue()
        self._backlog = 0  # samples committed and not yet decoded
        self._resampler: Any = None
        self._segmenter: LiveSegmenter | None = None
        self._manual: list[Samples] = []  # the buffer when commits are manual
        self._open: Utterance | None = None  # the utterance being spoken
        self._previous_item: str | None = None
        self._context = ""  # the text of the utterances so far (the next prompt)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._configured = False

    async def start(self) -> None:
        await self._apply(self.config)
        self._emit("session.created", session=session_json(self.id, self.config))

    def _emit(self, kind: str, **fields: Any) -> None:
        self.outbox.put_nowait(server_event(kind, **fields))

    async def handle(self, event: ClientEvent) -> None:
        """Act on one client event; a bad one raises ``AsrError`` (answered with an ``error`` event)."""
        if event.session is not None:
            await self._update(event.session)
        elif event.type == "input_audio_buffer.append":
            self._append(event.audio)
        elif event.type == "input_audio_buffer.commit":
            self._commit_now()
        elif event.type == "input_audio_buffer.clear":
            self._clear()
            self._emit("input_audio_buffer.cleared")

    # --- configuration ------------------------------------------------------------------------

    async def _update(self, session: TranscriptionSession | BetaTranscriptionSession) -> None:
        config = self.config.updated(session)
        await self._apply(config)
        beta = isinstance(session, BetaTranscriptionSession)
        kind = "transcription_session.updated" if beta else "session.updated"
        self._emit(kind, session=session_json(self.id, config, beta=beta))

    async def _apply(self, config: SessionConfig) -> None:
        """Check a config (model, language) and switch to it; the open utterance is dropped when the
        audio format or turn detection changes."""
        named = self.registry.resolve(config.model)
        engine = await self.registry.get(named)
        language = to_whisper(config.language)
        try:  # the HTTP path's route: other languages go to the model's multilingual partner
            route = plan_route(
                self.settings, named, engine.english_only, language, "transcribe", config.language
            )
        except InvalidRequest as exc:
            raise InvalidRequest(exc.message, field="session.audio.input.transcription.language") from None
        if route.detect_on is not None:
            # Live audio is not run through language detection first: no language stays English.
            route = route.after_detection("en")
        await self.registry.get(route.model_id)  # loaded (and its errors raised) before answering
        model_id, language = route.model_id, route.language
        if (
            not self._configured
            or config.rate != self.config.rate
            or config.turn_detection != self.config.turn_detection
        ):
            self._clear()
            rate = config.rate
            self._resampler = (
                None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, "float32")
            )
            self._segmenter = (
                None
                if config.turn_detection is None
                else LiveSegmenter(chunking_options(self.settings.vad, config.turn_detection))
            )
        self.config, self._model_id, self._language = config, model_id, language
        self._configured = True

    # --- audio --------------------------------------------------------------------------------

    def _append(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        if self._segmenter is None:
            self._manual.append(samples)
            if sum(map(len, self._manual)) >= self.settings.vad.max_chunk_s * SAMPLE_RATE:
                self._commit_now()  # a Whisper window is full: commit it as if the client had
            return
        for change in self._segmenter.feed(samples):
            if isinstance(change, SpeechStarted):
                self._open = Utterance(new_id("item"))
                self._emit(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=change.start_ms,
                    item_id=self._open.item_id,
                )
            else:
                self._speech_stopped(change)
        self._maybe_decode_early()
        self._maybe_decode_partial()

    def _speech_stopped(self, stopped: SpeechStopped) -> None:
        utterance = self._open or Utterance(new_id("item"))
        self._emit(
            "input_audio_buffer.speech_stopped", audio_end_ms=stopped.end_ms, item_id=utterance.item_id
        )
        self._commit(utterance, stopped.audio)

    def _commit_now(self) -> None:
        stopped = self._segmenter.flush() if self._segmenter is not None else None
        if stopped is not None:
            self._commit(self._open or Utterance(new_id("item")), stopped.audio)
            return
        audio = np.concatenate(self._manual) if self._manual else np.zeros(0, np.float32)
        if len(audio) < SAMPLE_RATE // 10:
            raise InvalidRequest(
                "buffer too small: expected at least 100 ms of audio to commit", field="input_audio_buffer"
            )
        self._manual = []
        self._commit(Utterance(new_id("item")), audio)

    def _clear(self) -> None:
        if self._open is not None:
            self._open.closed = True
            self._open.drop_early()
        self._open = None
        self._manual = []
        if self._segmenter is not None:
            self._segmenter.flush()

    def _commit(self, utterance: Utterance, audio: Samples) -> None:
        utterance.closed = True
        if utterance.pending is not None:
            utterance.pending.cancel()
        self._open = None
        self._emit(
            "input_audio_buffer.committed", item_id=utterance.item_id, previous_item_id=self._previous_item
        )
        self._previous_item = utterance.item_id
        self._backlog += len(audio)
        if self._backlog > self.settings.realtime.max_backlog_s * SAMPLE_RATE:
            raise SessionOverloaded(
                "the server is falling behind this session "
                f"({self._backlog / SAMPLE_RATE:.0f} s of audio waiting); "
                "reconnect later"
            )
        self._finals.put_nowait(Final(utterance, audio))

    # --- decoding -----------------------------------------------------------------------------

    def _options(self, *, final: bool) -> DecodeOptions:
        return decode_options(self.settings, self.config, self._language, self._context, final=final)

    async def _decode(
        self, audio: Samples, options: DecodeOptions, utterance: Utterance | None = None
    ) -> Transcript:
        async with self.registry.lease(self._model_id) as engine:
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

    def _maybe_decode_early(self) -> None:
        """Start the open utterance's final decode once the audio to commit is known (see
        ``LiveSegmenter.settled``); drop it when the person speaks again."""
        utterance = self._open
        if utterance is None or self._segmenter is None:
            return
        audio = self._segmenter.settled()
        if audio is None:
            utterance.drop_early()
        elif utterance.early is None and not self._backlog:  # no earlier utterance still to decode:
            options = self._options(final=True)  # its text, the prompt, is known
            task = asyncio.create_task(self._decode(audio, options))
            self._track(task)
            utterance.early = Early(len(audio), options, task)

    def _maybe_decode_partial(self) -> None:
        utterance, interval = self._open, self.settings.realtime.partial_interval_ms
        if utterance is None or utterance.decoding or not interval or self._segmenter is None:
            return
        if utterance.early is not None or self.capacity.partials >= self.capacity.max_partials:
            return  # (early: the person has stopped, the final decode is on its way)
        audio = self._segmenter.audio()
        step = interval * SAMPLE_RATE // 1000
        if len(audio) < max(utterance.decoded_samples + step, FIRST_PREVIEW_SAMPLES):
            return
        utterance.decoding, utterance.decoded_samples = True, len(audio)
        self.capacity.partials += 1
        task = asyncio.create_task(self._partial(utterance, audio))
        self._track(task)
        task.add_done_callback(self._partial_done)

    def _partial_done(self, task: asyncio.Task[None]) -> None:
        """Runs however the task ended, even cancelled before it started."""
        self.capacity.partials -= 1

    async def _partial(self, utterance: Utterance, audio: Samples) -> None:
        try:
            transcript = await self._decode(audio, self._options(final=False), utterance)
        except asyncio.CancelledError:
            return  # dropped at the commit: the final decode has the whole utterance
        except Exception:
            logger.exception("partial decode failed")  # the final decode reports failures
            return
        finally:
            utterance.decoding = False
        if not utterance.closed:
            delta = utterance.partials.update(transcript.text, len(audio) / SAMPLE_RATE)
            if delta:
                self._delta(utterance, delta)

    def _delta(self, utterance: Utterance, delta: str) -> None:
        self._emit(
            "conversation.item.input_audio_transcription.delta",
            item_id=utterance.item_id,
            content_index=0,
            delta=delta,
            logprobs=None,
        )

    async def run_finals(self) -> None:
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
                transcript = Transcript((), self._language or "en", 1.0)
            elif early is not None and (early.samples, early.options) == (len(job.audio), options):
                transcript = await early.task  # started before the silence closed the utterance
            else:
                transcript = await self._decode(job.audio, options)
        except AsrError as exc:
            self._failed(utterance, exc.message, exc.code)
            return
        except Exception:
            logger.exception("final decode failed")
            self._failed(utterance, "the transcription failed on the server", "internal_error")
            return
        delta = utterance.partials.finish(transcript.text)
        if delta:
            self._delta(utterance, delta)
        text = utterance.partials.text
        self._context = f"{self._context} {text}".strip()
        logprobs = [lp for s in transcript.segments for lp in s.logprobs]
        self._emit(
            "conversation.item.input_audio_transcription.completed",
            item_id=utterance.item_id,
            content_index=0,
            transcript=text,
            logprobs=logprobs_json(logprobs) if self.config.logprobs else None,
            usage={"type": "duration", "seconds": round(len(job.audio) / SAMPLE_RATE, 3)},
        )
        logger.debug("utterance %s decoded in %.2f s", utterance.item_id, time.monotonic() - started)

    def _failed(self, utterance: Utterance, message: str, code: str) -> None:
        self._emit(
            "conversation.item.input_audio_transcription.failed",
            item_id=utterance.item_id,
            content_index=0,
            error={"type": "transcription_error", "code": code, "message": message, "param": None},
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class SessionOverloaded(ServerBusy):
    """The session's committed audio waits longer than ``max_backlog_s``: it is closed (1013)."""
