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
from app.engine import N_SAMPLES, DecodeOptions, DecodeResult
from app.models.registry import ModelRegistry
from app.models.selection import Route, heard_english
from app.transcription.windows import first_window, run_options

# What a stream's English check listens to: within the engine's short (10 s) encoder window.
_LISTEN_SAMPLES = int(9.5 * SAMPLE_RATE)


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
        head = await asyncio.wrap_future(english.submit(samples, in_english))
        if heard_english(head, sure):
            return Route(route.model_id, "en"), head
    if route.detect_on is not None and streaming:
        # A stream's first chunk may be a word or two: the English model hears its first seconds on
        # the short encoder window (a sixth of a 30 s window's time: the first delta waits for it).
        await feed.decoded(first.start + _LISTEN_SAMPLES)
        quick = dataclasses.replace(in_english, word_timestamps=False, short_window=True)
        listened = feed.window(first.start, first.start + _LISTEN_SAMPLES)
        if heard_english(await asyncio.wrap_future(english.submit(listened, quick)), sure):
            return Route(route.model_id, "en"), head
    opening = await _opening(feed, first, streaming, settings.window_s)
    detector = await registry.get(route.detect_on or route.model_id)
    language, probability = await anyio.to_thread.run_sync(detector.detect_language, opening, route.among)
    settled = route.after_detection(language, probability, settings.language_detection_min_probability)
    return settled, head if settled.model_id == route.model_id else None


async def _opening(feed: ChunkFeed, first: Chunk, streaming: bool, window_s: float) -> Samples:
    """The audio detection listens to: the first window a request decodes (where the multilingual
    model then reuses its encoder pass), or a stream's first 30 s once decoded."""
    if not streaming:
        window = first_window(first, feed.chunks, window_s, streaming=False)
        return feed.window(window[0].start, window[-1].end)
    await feed.decoded(first.start + N_SAMPLES)
    return feed.window(first.start, first.start + N_SAMPLES)
