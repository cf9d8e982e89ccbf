"""Chunks -> model windows -> engine -> per-chunk results on the upload's timeline.

Consecutive VAD chunks are grouped into windows spanning up to ``window_s`` of audio (one encoder
pass each), and each window's words are mapped back to the chunk they were spoken in. Windows are
submitted to the engine, which decodes whatever is waiting as one batch on its own thread (inference
never blocks the event loop); work stops when the client goes away or the deadline passes.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import functools
import itertools
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Future
from typing import Any

from app.audio.chunking import Chunk
from app.audio.feed import ChunkFeed
from app.audio.pcm import SAMPLE_RATE, Samples
from app.engine import DecodeOptions, DecodeResult, Engine, Segment, Word
from app.transcription.deadline import within
from app.transcription.recovery import recovered
from app.transcription.result import ChunkResult

# Whisper keeps at most 223 prompt tokens; ~100 words of previous text is plenty of context.
_PROMPT_WORDS = 100


class WindowRunner:
    """Runs requests' windows on their engines, at most ``max_concurrent`` requests at a time."""

    def __init__(self, max_concurrent: int, *, max_lanes: int = 8, lane_windows: int = 3) -> None:
        self._slots = asyncio.Semaphore(max_concurrent)
        self.decoding = 0  # requests past the wait for a slot
        self._max_lanes = max_lanes
        self._lane_windows = lane_windows

    async def run(
        self,
        engine: Engine,
        feed: ChunkFeed,
        options: DecodeOptions,
        *,
        condition_on_previous_text: bool,
        window_s: float,
        streaming: bool = False,
        deadline: float | None = None,
        ahead: Mapping[int, Future[DecodeResult]] | None = None,
    ) -> AsyncIterator[ChunkResult]:
        """Yield each chunk's result in order, a window of chunks at a time.

        The windows are split into lanes of consecutive windows that decode side by side (their
        windows share model batches); within a lane each window is prompted with the previous one's
        text. ``streaming`` asks for word timings (to give each chunk exactly its own words) and
        decodes the first chunk alone as soon as ``feed`` has it, before the rest of the upload is
        decoded, so the first delta comes early. ``deadline`` is a ``time.monotonic()`` value;
        passing it raises ``RequestTimeout``. ``ahead``: windows already submitted, each the start
        of its lane (``lane_starts``), as the language was settled.
        """
        ahead = ahead or {}
        options = dataclasses.replace(options, word_timestamps=options.word_timestamps or streaming)
        # A job's run takes no request's slot: jobs.max_running bounds jobs, and their windows wait
        # behind every live request's anyway.
        slot = not options.background
        if slot:
            await within(deadline, self._slots.acquire())
        self.decoding += 1
        loop = asyncio.get_running_loop()
        decoded: list[asyncio.Future[DecodeResult]] = []
        windows: list[list[Chunk]] = []
        tasks: list[asyncio.Task[None]] = []

        def samples(w: int) -> Samples:
            return feed.window(windows[w][0].start, windows[w][-1].end)

        async def lane(indices: range) -> None:
            lane_options, previous = options, ""
            if indices.start in ahead:
                await decoded[indices.start]
            if indices.start > 0 and (streaming or options.language is None):
                # Wait for the first window: an early first delta, and one detected language.
                head = await asyncio.shield(decoded[0])
                if options.language is None and head.segments:
                    lane_options = dataclasses.replace(options, language=head.language)
            todo = [w for w in indices if not decoded[w].done()]  # a stream's first window is done
            if len(todo) < len(indices):
                head = decoded[indices.start].result()
                previous = head.text
                if lane_options.language is None and head.segments:
                    lane_options = dataclasses.replace(lane_options, language=head.language)
            if not todo:
                return
            encoded: Future[Any] | None = None
            current = samples(todo[0])  # float32 made once per window, as it is needed
            try:
                with engine.lane():
                    for k, w in enumerate(todo):
                        prompt = join_prompt(options.prompt, previous if condition_on_previous_text else "")
                        future = engine.submit(
                            current, dataclasses.replace(lane_options, prompt=prompt), encoded
                        )
                        # The next window's encoder pass needs no prompt: it runs while this one decodes
                        # (not a job's: it would reach the model's threads past the batcher's priorities).
                        encoded = None
                        if k + 1 < len(todo):
                            current = samples(todo[k + 1])
                            encoded = None if options.background else engine.encode_ahead(current)
                        transcript = await asyncio.wrap_future(future)
                        decoded[w].set_result(transcript)
                        previous = transcript.text or previous
                        if lane_options.language is None and transcript.segments:
                            # Detect once per lane, so windows of one talk don't flip between languages.
                            lane_options = dataclasses.replace(lane_options, language=transcript.language)
            finally:
                if encoded is not None:
                    encoded.cancel()  # the lane stopped early: drop the pass if it has not started

        async def guarded(indices: range) -> None:
            try:
                await lane(indices)
            except Exception as exc:  # hand the failure to whoever waits for these windows
                for w in indices:
                    if not decoded[w].done():
                        decoded[w].set_exception(exc)
            except BaseException:  # the request is over (its client left): nobody waits any more
                for w in indices:
                    decoded[w].cancel()
                raise

        try:
            index = 0
            first = await within(deadline, feed.first()) if streaming else None
            if first is not None:  # decoded alone while the rest of the upload is decoded
                windows, decoded = [[first]], [_future(loop, ahead.get(0))]
                tasks.append(asyncio.create_task(guarded(range(1))))
                for result in _split_window(await within(deadline, asyncio.shield(decoded[0])), [first], 0):
                    yield result
                index = 1
            feed.resume()
            windows = pack_windows(await within(deadline, feed.all()), window_s, first_alone=streaming)
            lanes = self.lanes(len(windows), engine.parallel_windows)
            starts = {indices.start for indices in lanes}
            decoded += [
                _future(loop, ahead.get(w) if w in starts else None)
                for w in range(len(decoded), len(windows))
            ]
            tasks += [asyncio.create_task(guarded(indices)) for indices in lanes]
            prompt = functools.partial(join_prompt, options.prompt)
            for w in range(index, len(windows)):
                transcript = await within(deadline, asyncio.shield(decoded[w]))
                transcript = await recovered(engine, feed, windows[w], transcript, options, prompt, deadline)
                for result in _split_window(transcript, windows[w], index):
                    yield result
                index += len(windows[w])
        finally:
            for task in tasks:
                task.cancel()  # cancels the engine futures not yet started
            for future in decoded:
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: no "never retrieved" warnings
            for submitted in ahead.values():
                submitted.cancel()  # a lane that never started: dropped unless a worker has it
            self.decoding -= 1
            if slot:
                self._slots.release()

    def lanes(self, n_windows: int, workers: int) -> list[range]:
        """The lanes an upload of ``n_windows`` decodes in, on an engine of so many workers."""
        return split_lanes(n_windows, self._max_lanes, self._lane_windows, workers)

    def lane_starts(self, n_windows: int, workers: int) -> list[int]:
        return [lane.start for lane in self.lanes(n_windows, workers)]


def _future(
    loop: asyncio.AbstractEventLoop, submitted: Future[DecodeResult] | None
) -> asyncio.Future[DecodeResult]:
    return loop.create_future() if submitted is None else asyncio.wrap_future(submitted, loop=loop)


def run_options(options: DecodeOptions, streaming: bool) -> DecodeOptions:
    """The options a request's windows are decoded with (a stream's chunks need their words timed)."""
    return dataclasses.replace(
        options, word_timestamps=options.word_timestamps or streaming, prompt=join_prompt(options.prompt, "")
    )


def first_window(first: Chunk, chunks: list[Chunk], window_s: float, *, streaming: bool) -> list[Chunk]:
    """The chunks of the first window ``WindowRunner.run`` decodes (a stream's: its first chunk)."""
    return [first] if streaming else pack_windows(chunks, window_s)[0]


def split_lanes(n_windows: int, max_lanes: int, lane_windows: int, at_least: int = 1) -> list[range]:
    """Consecutive runs of windows, as even as possible, each at least ``lane_windows`` long, and
    ``at_least`` of them where there are windows enough (so that no worker of the engine idles).

    More lanes mean bigger batches but more windows that start without the previous text.
    """
    lanes = max(1, min(max_lanes, max(n_windows // max(lane_windows, 1), min(at_least, n_windows))))
    bounds = [round(k * n_windows / lanes) for k in range(lanes + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def pack_windows(chunks: list[Chunk], window_s: float, *, first_alone: bool = False) -> list[list[Chunk]]:
    """Group consecutive chunks into windows spanning at most ``window_s`` of the upload.

    An encoder pass costs as much for 2 s of audio as for 28 s (windows under 20 s keep Whisper's
    30 s), and Whisper is more accurate with a sentence's neighbours (and the pauses between them)
    around it. ``first_alone`` gives the first chunk a window of its own so that a stream's first
    delta comes as early as possible.
    """
    windows: list[list[Chunk]] = []
    limit = int(window_s * SAMPLE_RATE)
    for i, chunk in enumerate(chunks):
        if not windows or (i == 1 and first_alone) or chunk.end - windows[-1][0].start > limit:
            windows.append([])
        windows[-1].append(chunk)
    return windows


def _split_window(transcript: DecodeResult, window: list[Chunk], first_index: int) -> list[ChunkResult]:
    """Move a window's segments and words onto the upload's timeline and hand each to its chunk.

    A word belongs to the chunk its midpoint falls in (speech the VAD missed, between two chunks,
    goes to the earlier one); a segment belongs to the chunk of its first word, or of its start.
    """
    offset_s = window[0].start_s
    end_s = window[-1].start_s + window[-1].duration_s
    starts_s = [c.start_s for c in window]

    def at(t: float) -> float:
        return round(min(max(offset_s + t, offset_s), end_s), 3)

    def owner(t: float) -> int:
        return max(bisect.bisect_right(starts_s, t) - 1, 0)

    def placed(w: Word) -> Word:
        # Whisper stretches the first word after a pause back over the silence; a word starts no
        # earlier than the speech of the chunk it ends in.
        start, end = at(w.start_s), at(w.end_s)
        speech_s = window[owner(end)].speech_start_s
        if start < speech_s <= end:
            start = round(speech_s, 3)
        return dataclasses.replace(w, start_s=start, end_s=end)

    words: list[list[Word]] = [[] for _ in window]
    segments: list[list[Segment]] = [[] for _ in window]
    for segment in transcript.segments:
        moved = [placed(w) for w in segment.words]
        for w in moved:
            words[owner((w.start_s + w.end_s) / 2)].append(w)
        start, end = at(segment.start_s), at(segment.end_s)
        if moved:
            start = max(start, moved[0].start_s)
        home = owner(moved[0].start_s if moved else start)
        segments[home].append(
            dataclasses.replace(segment, start_s=start, end_s=max(start, end), words=tuple(moved))
        )
    return [
        ChunkResult(first_index + k, chunk, tuple(segments[k]), tuple(words[k]), transcript.language)
        for k, chunk in enumerate(window)
    ]


def join_prompt(user_prompt: str | None, previous: str) -> str | None:
    """The caller's prompt, then the last words of the text decoded before (live sessions too)."""
    tail = " ".join(previous.split()[-_PROMPT_WORDS:])
    joined = " ".join(p for p in (user_prompt, tail) if p)
    return joined or None
