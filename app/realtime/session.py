"""One live transcription session: client events in, server events out through ``outbox``.

Audio (PCM16, or G.711 expanded to PCM16) is resampled to 16 kHz as it arrives. With ``server_vad``
the segmenter finds utterances: the one being spoken is previewed for deltas, and once it closes it
is committed for its final decode (see ``app.realtime.decoder``). With ``turn_detection: null`` the
client commits the buffer itself.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import numpy as np
import soxr

from app.audio.chunking import chunking_options
from app.audio.g711 import expand
from app.audio.pcm import SAMPLE_RATE, Samples
from app.config import Settings
from app.errors import InvalidRequest
from app.models.registry import ModelRegistry
from app.models.selection import plan_route
from app.realtime.capacity import LiveCapacity
from app.realtime.decoder import LiveDecoder
from app.realtime.events import (
    BufferCleared,
    BufferCommitted,
    BufferSpeechStarted,
    BufferSpeechStopped,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    TranscriptionSessionUpdated,
    beta_session_object,
    session_object,
)
from app.realtime.protocol import (
    BetaTranscriptionSession,
    ClientEvent,
    SessionConfig,
    TranscriptionSession,
    new_id,
)
from app.realtime.segmenter import LiveSegmenter, SpeechStarted, SpeechStopped
from app.realtime.utterances import Utterance
from app.transcription.languages import to_whisper

_G711: dict[str, Literal["mulaw", "alaw"]] = {"audio/pcmu": "mulaw", "audio/pcma": "alaw"}


class RealtimeSession:
    """The state machine of one connection (the route owns the socket and the limits)."""

    def __init__(self, settings: Settings, registry: ModelRegistry, capacity: LiveCapacity) -> None:
        self.settings = settings
        self.registry = registry
        self.id = new_id("sess")
        self.outbox: asyncio.Queue[ServerEvent] = asyncio.Queue()
        self.decoder = LiveDecoder(
            settings, registry, capacity, self._emit, SessionConfig(model=settings.default_model)
        )
        self._resampler: Any = None
        self._segmenter: LiveSegmenter | None = None
        self._manual: list[Samples] = []  # the buffer when commits are manual
        self._open: Utterance | None = None  # the utterance being spoken
        self._previous_item: str | None = None
        self._configured = False

    @property
    def config(self) -> SessionConfig:
        """The session's settings, as its decoder uses them."""
        return self.decoder.config

    async def start(self) -> None:
        await self._apply(self.config)
        self._emit(SessionCreated(session=session_object(self.id, self.config)))

    def _emit(self, event: ServerEvent) -> None:
        self.outbox.put_nowait(event)

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
            self._emit(BufferCleared())

    # --- configuration ------------------------------------------------------------------------

    async def _update(self, session: TranscriptionSession | BetaTranscriptionSession) -> None:
        config = self.config.updated(session)
        await self._apply(config)
        if isinstance(session, BetaTranscriptionSession):
            self._emit(TranscriptionSessionUpdated(session=beta_session_object(self.id, config)))
        else:
            self._emit(SessionUpdated(session=session_object(self.id, config)))

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
        if (
            not self._configured
            or config.rate != self.config.rate
            or config.format != self.config.format
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
        self.decoder.config = config
        self.decoder.model_id, self.decoder.language = route.model_id, route.language
        self._configured = True

    # --- audio --------------------------------------------------------------------------------

    def _append(self, audio: bytes) -> None:
        samples = self._samples(audio)
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
                self._emit(BufferSpeechStarted(audio_start_ms=change.start_ms, item_id=self._open.item_id))
            else:
                self._speech_stopped(change)
        if self._open is not None:
            self.decoder.heard(self._open, self._segmenter)

    def _samples(self, audio: bytes) -> Samples:
        """The appended bytes as float samples at the session's rate."""
        kind = self.config.format
        if kind == "audio/pcm" and len(audio) % 2:
            raise InvalidRequest("audio: expected base64 of 16-bit little-endian PCM", field="audio")
        ints = np.frombuffer(audio, "<i2") if kind == "audio/pcm" else expand(audio, _G711[kind])
        return ints.astype(np.float32) / np.float32(32768.0)

    def _speech_stopped(self, stopped: SpeechStopped) -> None:
        utterance = self._open or Utterance(new_id("item"))
        self._emit(BufferSpeechStopped(audio_end_ms=stopped.end_ms, item_id=utterance.item_id))
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
        self._open = None
        self._emit(BufferCommitted(item_id=utterance.item_id, previous_item_id=self._previous_item))
        self._previous_item = utterance.item_id
        self.decoder.commit(utterance, audio)

    async def run_finals(self) -> None:
        """Decode committed utterances in order, forever (the route cancels it)."""
        await self.decoder.run()

    async def close(self) -> None:
        await self.decoder.close()
