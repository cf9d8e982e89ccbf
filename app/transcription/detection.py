"""A request without a language: which language, and so which model, before anything is answered.

The English model decodes the request's first window first (the window the request would decode
first anyway, with the same options): where it is sure of itself the request is English and that
decode is its first window's result, so detection costs nothing. Otherwise the multilingual model's
language detection decides (see ``app.models.selection``), among the request's ``languages`` when it
gave some.
"""

from __future__ import annotations

import asyncio
import dataclasses

import anyio.to_thread

from app.audio.chunking import Chunk
from app.audio.feed import ChunkFeed
from app.audio.pcm import SAMPLE_RATE, Samples
from app.config import Settings
from app.engine import N_SAMPLES, DecodeOptions, DecodeResult, Engine
from app.models.registry import ModelRegistry
from app.models.selection import Route, heard_english
from app.transcription.windows import first_window, run_options

# What a stream's English check listens to: within the engine's short (10 s) encoder window.
_LISTEN_SAMPLES = int(9.5 * SAMPLE_RATE)
# A first chunk shorter than this (a word or two) is heard again at once, on the model's other worker:
# tiny.en is most often unsure of so little, and the first delta then waits for the longer of the two.
_EAGER_BELOW_SAMPLES = 3 * SAMPLE_RATE


async def settle_language(
    route: Route,
    registry: ModelRegistry,
    settings: Settings,
    feed: ChunkFeed,
    options: DecodeOptions,
    *,
    streaming: bool,
) -> tuple[Route, DecodeResult | None]:
    """The route with its language known (None where the model detects it itself, window by
    window), and the first window's result when deciding it decoded that window already."""
    if route.language is not None or (route.detect_on is None and not route.among):
        return route, None
    first = await feed.first()
    if first is None:  # no speech: nothing to detect (nor a model to load for it), nothing to decode
        return route.after_detection("en"), None
    head: DecodeResult | None = None
    sure = settings.language_detection_english_min_logprob
    if route.detect_on is not None:
        window = first_window(first, feed.chunks, settings.window_s, streaming=streaming)
        english = await registry.get(route.model_id)
        in_english = dataclasses.replace(run_options(options, streaming), language="en")
        samples = feed.window(window[0].start, window[-1].end)
        decoding = asyncio.wrap_future(english.submit(samples, in_english))
        listening = _Listening(english, feed, first, in_english) if streaming else None
        if listening is not None and first.end - first.start < _EAGER_BELOW_SAMPLES:
            listening.start()
        try:
            head = await decoding
            if heard_english(head, sure):
                return Route(route.model_id, "en"), head
            if listening is not None and heard_english(await listening.start(), sure):
                return Route(route.model_id, "en"), head
        finally:
            if listening is not None:
                listening.cancel()  # not needed after all: dropped unless a worker has started it
    opening = await _opening(feed, first, streaming, settings.window_s)
    detector = await registry.get(route.detect_on or route.model_id)
    language, probability = await anyio.to_thread.run_sync(detector.detect_language, opening, route.among)
    settled = route.after_detection(language, probability, settings.language_detection_min_probability)
    return settled, head if settled.model_id == route.model_id else None


class _Listening:
    """A stream's first chunk may be a word or two: the English model also hears the stream's first
    9.5 s, on the short encoder window (a sixth of a 30 s window's time)."""

    def __init__(self, english: Engine, feed: ChunkFeed, first: Chunk, options: DecodeOptions) -> None:
        self._english, self._feed, self._first = english, feed, first
        self._options = dataclasses.replace(options, word_timestamps=False, short_window=True)
        self._task: asyncio.Task[DecodeResult] | None = None

    def start(self) -> asyncio.Task[DecodeResult]:
        """The decode, started on the first call (as soon as the audio is there)."""
        if self._task is None:
            self._task = asyncio.create_task(self._decode())
        return self._task

    def cancel(self) -> None:
        if self._task is None:
            return
        if self._task.done() and not self._task.cancelled():
            self._task.exception()  # retrieved: the feed's errors reach the stream through the runner
        self._task.cancel()  # (cancels the engine's future with it)

    async def _decode(self) -> DecodeResult:
        start = self._first.start
        await self._feed.decoded(start + _LISTEN_SAMPLES)
        listened = self._feed.window(start, start + _LISTEN_SAMPLES)
        return await asyncio.wrap_future(self._english.submit(listened, self._options))


async def _opening(feed: ChunkFeed, first: Chunk, streaming: bool, window_s: float) -> Samples:
    """The audio detection listens to: the first window a request decodes (where the multilingual
    model then reuses its encoder pass), or a stream's first 30 s once decoded."""
    if not streaming:
        window = first_window(first, feed.chunks, window_s, streaming=False)
        return feed.window(window[0].start, window[-1].end)
    await feed.decoded(first.start + N_SAMPLES)
    return feed.window(first.start, first.start + N_SAMPLES)
