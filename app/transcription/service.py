"""The transcription use case: validate everything that can fail before the first byte is sent,
then run the chunks and hand results to the renderer (one body, or a stream of events).

A stream starts on its first chunk as soon as that chunk is final (``app.audio.feed``); the rest of the
upload is decoded meanwhile, and a failure found there ends the stream with an error event."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio.to_thread

from app.audio.chunking import chunking_options
from app.audio.decode import decode_audio
from app.audio.feed import ChunkFeed, speech_chunks
from app.audio.pcm import Audio, Listener, PcmFormat
from app.config import Settings
from app.diarization import Diarization, DiarizationWorker, KnownSpeakers, SpeakerHints
from app.engine import DEFAULT_TEMPERATURES, DecodeOptions
from app.errors import AsrError
from app.models.registry import ModelRegistry
from app.models.selection import Task, plan_route
from app.server.admission import Ticket
from app.server.metrics import Metrics
from app.transcription.channels import channel_feeds, channel_turns, lead, merge, split_channels
from app.transcription.deadline import within
from app.transcription.detection import Decoded, settle_language
from app.transcription.events import StreamEvents, done_event, error_event, speaker_events
from app.transcription.languages import to_bcp47, to_whisper, to_whisper_list
from app.transcription.params import TranscriptionParams, Upload
from app.transcription.protocol import StreamEvent, TextDelta
from app.transcription.references import decode_references
from app.transcription.result import ChunkResult, Transcription
from app.transcription.windows import WindowRunner

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    """A request that passed every check: its audio and chunks (a stream's still arriving) and how
    to decode them."""

    params: TranscriptionParams
    model_id: str  # its engine is leased from the registry while the job runs
    feed: ChunkFeed
    options: DecodeOptions
    started: float  # time.monotonic()
    speakers: SpeakerHints | None = None  # diarize, with these hints
    ahead: Decoded = dataclasses.field(default_factory=dict)  # windows submitted as the language was settled
    known: KnownSpeakers | None = None  # and name these speakers where their voices match
    channels: tuple[ChunkFeed, ...] = ()  # multichannel: each channel's feed (``feed`` is one of them)

    @property
    def deadline(self) -> float | None:
        return None if self.params.timeout is None else self.started + self.params.timeout


class TranscriptionService:
    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        runner: WindowRunner,
        metrics: Metrics | None = None,
        diarizer: DiarizationWorker | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.runner = runner
        self.metrics = metrics or Metrics()
        self.diarizer = diarizer or DiarizationWorker()

    async def prepare(self, upload: Upload, ticket: Ticket, task: Task = "transcribe") -> Job:
        """Every check that can fail before inference: model, language, audio (charged to the
        request's ``ticket``), VAD; then the model that decodes it (see app/models/selection.py).

        A stream (unless diarized: the speakers need all of the audio) waits only for its first
        chunk; its feed keeps decoding the upload, which must stay open until ``job.feed.close()``.
        """
        started = time.monotonic()
        params = upload.params.model_copy(update=self.registry.implied_fields(upload.params.model))
        model_id = self.registry.resolve(params.model)
        language = to_whisper(params.language)
        languages = to_whisper_list(params.languages)
        engine = await self.registry.get(model_id)
        route = plan_route(
            self.settings, model_id, engine.english_only, language, task, params.language, languages
        )
        pcm = self.pcm_format(params)
        opts = chunking_options(self.settings.vad, params.chunking_strategy)
        names, references = params.known_speaker_names, params.known_speaker_references
        known = await anyio.to_thread.run_sync(decode_references, names, references, pcm, ticket.charge)
        channels: tuple[ChunkFeed, ...] = ()
        if params.multichannel:  # decoded whole, each channel apart (app/transcription/channels.py)
            audio = await anyio.to_thread.run_sync(self._decode, upload, pcm, ticket, None, True)
            channels = channel_feeds(await anyio.to_thread.run_sync(split_channels, audio, opts))
            feed = lead(channels)
        elif params.stream and not params.wants_speakers:
            feed = ChunkFeed.decode(lambda listener: self._decode(upload, pcm, ticket, listener), opts)
        else:
            audio = await anyio.to_thread.run_sync(self._decode, upload, pcm, ticket, None)
            chunks = await anyio.to_thread.run_sync(speech_chunks, audio, opts)
            feed = ChunkFeed.complete(audio, chunks)
        options = DecodeOptions(
            language=route.language,
            task=task,
            beam_size=self.settings.beam_size,
            prompt=params.prompt,
            temperature=DEFAULT_TEMPERATURES if params.temperature is None else (params.temperature,),
            hotwords=params.prompt_words,
            # Subtitle cues are cut and timed at word boundaries.
            word_timestamps="word" in params.timestamp_granularities
            or params.wants_speakers  # words are attributed to speakers one by one
            or params.multichannel  # a channel's echoes are found word by word
            or (params.response_format in {"srt", "vtt"} and self.settings.subtitles.line_chars > 0),
            logprobs="logprobs" in params.include,
            background=upload.background,
        )
        ahead: Decoded = {}
        try:
            await feed.first()  # a stream's decode errors, raised before answering
            route, ahead = await settle_language(
                route,
                self.registry,
                self.settings,
                feed,
                options,
                self.runner.lane_starts,
                streaming=params.stream,
            )
            await self.registry.get(route.model_id)  # loaded (and its errors raised) before answering
        except BaseException:
            for future in ahead.values():
                future.cancel()  # dropped unless a worker has started it
            await feed.close()
            raise
        options = dataclasses.replace(options, language=route.language)
        speakers = None
        if params.wants_speakers and not params.multichannel:  # (the channels are the speakers)
            speakers = SpeakerHints(params.num_speakers, params.min_speakers or 1, params.max_speakers or 8)
        return Job(params, route.model_id, feed, options, started, speakers, ahead, known, channels)

    def pcm_format(self, params: TranscriptionParams) -> PcmFormat:
        """How a headerless upload's bytes are read: the request's fields over the server's defaults."""
        rate, channels = params.sample_rate or self.settings.pcm_sample_rate, params.channels
        return PcmFormat(rate, channels or self.settings.pcm_channels, encoding=params.encoding)

    def _decode(
        self, upload: Upload, pcm: PcmFormat, ticket: Ticket, listener: Listener | None, split: bool = False
    ) -> Audio:
        return decode_audio(
            upload.file,
            content_type=upload.content_type,
            pcm=pcm,
            max_duration_s=self.settings.max_audio_s,
            max_source_samples=self.settings.max_decoded_samples,
            charge=ticket.charge,
            listener=listener,
            split_channels=self.settings.multichannel_max_channels if split else 0,
        )

    def _results(self, job: Job, *, streaming: bool) -> AsyncIterator[ChunkResult]:
        if not job.channels:
            return self._run(job, job.feed, streaming=streaming)
        runs = [self._run(job, feed, streaming=streaming) for feed in job.channels]
        return merge(runs, [feed.audio for feed in job.channels if feed.audio is not None])

    async def _run(self, job: Job, feed: ChunkFeed, *, streaming: bool) -> AsyncIterator[ChunkResult]:
        # The lease keeps the model loaded while it runs (and reloads it if it was unloaded as idle
        # since prepare() looked at it).
        async with self.registry.lease(job.model_id) as engine:
            async for result in self.runner.run(
                engine,
                feed,
                job.options,
                condition_on_previous_text=self.settings.condition_on_previous_text,
                window_s=self.settings.window_s,
                streaming=streaming,
                deadline=job.deadline,
                ahead=job.ahead if feed is job.feed else None,  # (the lead channel's, multichannel)
            ):
                yield result
        self._log(job)

    def _diarize(self, job: Job) -> asyncio.Future[Diarization] | None:
        """Start the job's diarization beside its transcription (None when not asked for)."""
        if job.speakers is None:
            return None
        assert job.feed.audio is not None, "a diarized job's audio is decoded before it starts"
        return self.diarizer.start(job.feed.audio.pcm, job.speakers, job.known)

    async def _settle(self, job: Job, pending: asyncio.Future[Diarization] | None) -> Diarization | None:
        if pending is None:
            return None
        return await within(job.deadline, asyncio.shield(pending))

    def _assemble(
        self, job: Job, results: list[ChunkResult], speakers: Diarization | None = None
    ) -> Transcription:
        detected = next((r.language for r in results if r.segments), job.options.language or "en")
        if job.channels:  # named by known_speaker_names in channel order
            speakers = channel_turns(results, job.params.known_speaker_names)
        return Transcription(
            tuple(results),
            job.feed.duration_s,
            to_bcp47(detected, job.params.language),
            task=job.options.task,
            logprobs=job.options.logprobs,
            # Diarizing turns word timings on; the words are listed only when asked for.
            words=job.options.word_timestamps
            if job.speakers is None and not job.channels
            else "word" in job.params.timestamp_granularities,
            speakers=speakers,
            channels=len(job.channels),
            detected=not job.params.declares_language,
        )

    async def transcribe(
        self, job: Job, progress: Callable[[ChunkResult], None] | None = None
    ) -> Transcription:
        """The whole transcript; ``progress`` sees each chunk's result as its window finishes."""
        pending = self._diarize(job)
        try:
            results = []
            async for result in self._results(job, streaming=False):
                results.append(result)
                if progress is not None:
                    progress(result)
            return self._assemble(job, results, await self._settle(job, pending))
        finally:
            if pending is not None:
                pending.cancel()

    async def events(self, job: Job) -> AsyncIterator[StreamEvent]:
        """Stream events: a delta per chunk with text (and its word/segment events when asked
        for), then done; an error event if it fails."""
        results: list[ChunkResult] = []
        granularities = job.params.timestamp_granularities
        words, segments = "word" in granularities, "segment" in granularities
        diarizing = job.speakers is not None or bool(job.channels)
        # A diarized stream's word and segment events wait for the speakers; its deltas do not.
        render = StreamEvents(
            words=words and not diarizing, segments=segments and not diarizing, logprobs=job.options.logprobs
        )
        pending = self._diarize(job)
        waiting_for_delta = True
        try:
            async for result in self._results(job, streaming=True):
                results.append(result)
                # A delta (a chunk with text) names its speaker once the speakers are known.
                known = pending.result() if pending is not None and pending.done() and result.text else None
                if job.channels and result.text:  # a channel's chunk: its speaker is known at once
                    known = channel_turns((result,), job.params.known_speaker_names)
                for event in render.chunk(result, known):
                    if waiting_for_delta and isinstance(event, TextDelta):
                        waiting_for_delta = False
                        since = time.monotonic() - job.started
                        self.metrics.first_delta.labels(job.model_id).observe(since)
                    yield event
            settled = self._assemble(job, results, await self._settle(job, pending))
            if settled.diarized:
                diarized = job.params.response_format == "diarized_json"
                for event in speaker_events(settled, words=words, segments=segments, diarized=diarized):
                    yield event
        except AsrError as exc:
            logger.warning("stream failed: %s", exc.message)
            yield error_event(exc.message, exc.code)
            return
        except Exception:
            logger.exception("stream failed")
            yield error_event("the transcription failed on the server", "internal_error")
            return
        finally:
            if pending is not None:
                pending.cancel()
        yield done_event(settled)

    def _log(self, job: Job) -> None:
        wall_s, audio_s = time.monotonic() - job.started, job.feed.duration_s
        logger.debug(  # the access log has the request's line
            "transcribed %.1f s of audio (%s, %d chunks) with %s in %.2f s (%.1fx real time)",
            audio_s,
            job.feed.audio.source_format if job.feed.audio else "?",
            len(job.feed.chunks),
            job.model_id,
            wall_s,
            audio_s / wall_s if wall_s > 0 else 0.0,
        )
