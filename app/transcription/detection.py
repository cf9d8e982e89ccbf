"""A request without a language: which language, and so which model, before anything is answered.

The English model decodes the request's first window first (the window the request would decode
first anyway, with the same options): where it is sure of itself the request is English and that
decode is its first window's result, so detection costs nothing. Meanwhile the model's other workers
start the upload's other lanes in English, as a declared language would have them do (dropped if the
request is not English after all). Otherwise the multilingual model's language detection decides (see
``app.models.selection``), among the request's ``languages`` when it gave some.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError

import anyio.to_thread

from app.audio.chunking import Chunk
from app.audio.feed import ChunkFeed
from app.audio.pcm import SAMPLE_RATE, Samples
from app.config import Settings
from app.engine import N_SAMPLES, DecodeOptions, DecodeResult, Engine
from app.models.registry import ModelRegistry
from app.models.selection import Route, heard_english
from app.transcription.windows import first_window, pack_windows, run_options

# What a stream's English check listens to: within the engine's short (10 s) encoder window.
_LISTEN_SAMPLES = int(9.5 * SAMPLE_RATE)
# A first chunk shorter than this (a word or two) is heard again at once, on the model's other worker:
# tiny.en is most often unsure of so little, and the first delta then waits for the longer of the two.
_EAGER_BELOW_SAMPLES = 3 * SAMPLE_RATE


# Windows decoded while the language was settled, by their index in the upload.
Decoded = dict[int, Future[DecodeResult]]
# The first window of each lane an upload of so many windows is split into, on an engine of so many workers.
LaneStarts = Callable[[int, int], list[int]]


async def settle_language(
    route: Route,
    registry: ModelRegistry,
    settings: Settings,
    feed: ChunkFeed,
    options: DecodeOptions,
    lane_starts: LaneStarts,
    *,
    streaming: bool,
) -> tuple[Route, Decoded]:
    """The route with its language known (None where the model detects it itself, window by
    window), and the windows deciding it decoded already (or is decoding) in that language."""
    if route.language is not None or (route.detect_on is None and not route.among):
        return route, {}
    first = await feed.first()
    if first is None:  # no speech: nothing to detect (nor a model to load for it), nothing to decode
        return route.after_detection("en"), {}
    speculation: _InEnglish | None = None
    try:
        if route.detect_on is not None:
            english = await registry.get(route.model_id)
            in_english = dataclasses.replace(run_options(options, streaming), language="en")
            sure = settings.language_detection_english_min_logprob
            speculation = _InEnglish(english, in_english, sure)
            windows = [[first]] if streaming else pack_windows(feed.chunks, settings.window_s)
            starts = [0] if streaming else lane_starts(len(windows), english.parallel_windows)
            # The first window decides; the other workers' lanes start meanwhile, as they would in English.
            for w in starts[: max(1, english.parallel_windows)]:
                speculation.submit(w, feed.window(windows[w][0].start, windows[w][-1].end), eager=streaming)
            if await _english(speculation, feed, first, sure, streaming=streaming):
                return Route(route.model_id, "en"), speculation.kept()
        opening = await _opening(feed, first, streaming, settings.window_s)
        detector = await registry.get(route.detect_on or route.model_id)
        language, probability = await anyio.to_thread.run_sync(detector.detect_language, opening, route.among)
        settled = route.after_detection(language, probability, settings.language_detection_min_probability)
    except BaseException:
        if speculation is not None:
            speculation.drop()
        raise
    if speculation is None:
        return settled, {}
    if settled.model_id == route.model_id:
        return settled, speculation.kept()
    speculation.drop()
    return settled, {}


class _InEnglish:
    """Windows decoded in English before the request is known to be English: at temperature 0 only,
    giving up after a first pass that failed Whisper's checks or left speech for more passes while
    less sure than ``sure``, so speech in another language costs one pass, not Whisper's further
    passes and fallback through hotter temperatures. A window kept where that fell short is decoded
    again as the request asked."""

    def __init__(self, english: Engine, options: DecodeOptions, sure: float) -> None:
        self.english, self.options = english, options
        cold = options.temperature[:1] == (0.0,)
        self.cold = dataclasses.replace(options, temperature=(0.0,), give_up_below=sure) if cold else options
        self._windows: dict[int, tuple[Future[DecodeResult], Samples, Future[DecodeResult] | None]] = {}

    def submit(self, w: int, samples: Samples, *, eager: bool = False) -> None:
        """``eager``: where the window falls short, decode it again at once, before the language is
        settled (a stream's first delta waits for it)."""
        cold = self.english.submit(samples, self.cold)
        redo = eager and self.cold is not self.options
        self._windows[w] = (
            cold,
            samples,
            _as_asked(self.english, cold, samples, self.options) if redo else None,
        )

    def head(self) -> Future[DecodeResult]:
        return self._windows[0][0]

    def kept(self) -> Decoded:
        if self.cold is self.options:
            return {w: cold for w, (cold, _, _) in self._windows.items()}
        return {
            w: asked or _as_asked(self.english, cold, samples, self.options)
            for w, (cold, samples, asked) in self._windows.items()
        }

    def drop(self) -> None:
        for cold, _, asked in self._windows.values():
            for future in (cold, asked):
                if future is not None:
                    future.cancel()  # dropped unless a worker has started it


def _as_asked(
    english: Engine, cold: Future[DecodeResult], samples: Samples, options: DecodeOptions
) -> Future[DecodeResult]:
    """``cold``'s result, or where it fell back the window decoded again with ``options``;
    cancelling it cancels whichever decode is pending."""
    out: Future[DecodeResult] = Future()

    def settle(done: Future[DecodeResult]) -> None:
        if done.cancelled():
            out.cancel()
        elif (error := done.exception()) is not None:
            with contextlib.suppress(InvalidStateError):  # cancelled meanwhile: nobody waits for it
                out.set_exception(error)
        elif done is cold and done.result().fell_back:
            again = english.submit(samples, options)
            out.add_done_callback(lambda o: again.cancel() if o.cancelled() else None)
            again.add_done_callback(settle)
        else:
            with contextlib.suppress(InvalidStateError):
                out.set_result(done.result())

    out.add_done_callback(lambda o: cold.cancel() if o.cancelled() else None)
    cold.add_done_callback(settle)
    return out


async def _english(
    speculation: _InEnglish, feed: ChunkFeed, first: Chunk, sure: float, *, streaming: bool
) -> bool:
    """Whether the English model is sure of the first window; of a stream's first seconds where
    that left doubt."""
    listening = _Listening(speculation.english, feed, first, speculation.cold) if streaming else None
    if listening is not None and first.end - first.start < _EAGER_BELOW_SAMPLES:
        listening.start()
    try:
        if heard_english(await asyncio.wrap_future(speculation.head()), sure):
            return True
        return listening is not None and heard_english(await listening.start(), sure)
    finally:
        if listening is not None:
            listening.cancel()  # not needed after all: dropped unless a worker has started it


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
