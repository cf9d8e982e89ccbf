"""Chunks -> model windows -> engine -> per-chunk results on the upload's timeline.

Consecutive VAD chunks are grouped into windows spanning up to ``window_s`` of audio (one encoder
pass each), and each window's words are mapped back to the chunk they were spoken in. Windows run on
worker threads (inference never blocks the event loop), a bounded number at a time; requests take
turns window by window, and work stops between windows when the client goes away or the deadline
passes.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import anyio

from app.audio import SAMPLE_RATE, Audio
from app.engine import DecodeOptions, Engine, Segment, Transcript, Word
from app.errors import RequestTimeout, ServerBusy
from app.vad import Chunk

logger = logging.getLogger(__name__)

# Whisper keeps at most 223 prompt tokens; ~100 words of previous text is plenty of context.
_PROMPT_WORDS = 100


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """One chunk's transcript; segment and word times are on the upload's timeline."""

    index: int
    chunk: Chunk
    segments: tuple[Segment, ...]  # the segments that start in this chunk
    words: tuple[Word, ...]  # the words spoken in this chunk
    language: str

    @property
    def text(self) -> str:
        if self.words:
            return "".join(w.word for w in self.words).strip()
        return "".join(s.text for s in self.segments).strip()


class Transcriber:
    """Admits requests (or refuses them with 503 when the line is full) and runs their chunks."""

    def __init__(self, max_concurrent: int, max_queued: int) -> None:
        # A window that outlives its request (timeout, disconnect) keeps its worker until it ends,
        # so the model never runs more windows at once than it has workers; queued ones are dropped.
        self._executor = ThreadPoolExecutor(max_concurrent, thread_name_prefix="asr-infer")
        self._capacity = max_concurrent + max_queued
        self._active = 0

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def active_requests(self) -> int:
        return self._active

    def check_capacity(self) -> None:
        """Refuse a new request (503) while the line is full; called before any response starts."""
        if self._active >= self._capacity:
            raise ServerBusy(f"the server is busy ({self._active} requests in progress); retry later")

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Count a request as in progress while its chunks run."""
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1

    async def run(
        self,
        engine: Engine,
        audio: Audio,
        chunks: list[Chunk],
        options: DecodeOptions,
        *,
        condition_on_previous_text: bool,
        window_s: float,
        streaming: bool = False,
        deadline: float | None = None,
    ) -> AsyncIterator[ChunkResult]:
        """Yield each chunk's result in order, a window of chunks at a time.

        ``streaming`` asks for word timings (to give each chunk exactly its own words) and a window
        of its own for the first chunk. ``deadline`` is a ``time.monotonic()`` value; passing it
        raises ``RequestTimeout``.
        """
        previous = ""
        index = 0
        word_timestamps = options.word_timestamps or streaming
        for window in pack_windows(chunks, window_s, first_alone=streaming):
            prompt = _join_prompt(options.prompt, previous if condition_on_previous_text else "")
            window_options = dataclasses.replace(options, prompt=prompt, word_timestamps=word_timestamps)
            samples = audio.samples[window[0].start : window[-1].end]
            remaining_s = math.inf if deadline is None else deadline - time.monotonic()
            future = self._executor.submit(engine.transcribe, samples, window_options)
            try:
                with anyio.fail_after(max(remaining_s, 0.0)):
                    transcript = await asyncio.wrap_future(future)
            except TimeoutError:
                raise RequestTimeout("the request did not finish within its timeout") from None
            for result in _split_window(transcript, window, index):
                previous = result.text or previous
                yield result
            index += len(window)
            if options.language is None and transcript.segments:
                # Detect once, then hold it, so windows of one talk don't flip between languages.
                options = dataclasses.replace(options, language=transcript.language)


def pack_windows(chunks: list[Chunk], window_s: float, *, first_alone: bool = False) -> list[list[Chunk]]:
    """Group consecutive chunks into windows spanning at most ``window_s`` of the upload.

    One 30 s encoder pass costs the same for 2 s of audio as for 30 s, and Whisper is more accurate
    with a sentence's neighbours (and the pauses between them) around it. ``first_alone`` gives the
    first chunk a window of its own so that a stream's first delta comes as early as possible.
    """
    windows: list[list[Chunk]] = []
    limit = int(window_s * SAMPLE_RATE)
    for i, chunk in enumerate(chunks):
        if not windows or (i == 1 and first_alone) or chunk.end - windows[-1][0].start > limit:
            windows.append([])
        windows[-1].append(chunk)
    return windows


def _split_window(transcript: Transcript, window: list[Chunk], first_index: int) -> list[ChunkResult]:
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

    words: list[list[Word]] = [[] for _ in window]
    segments: list[list[Segment]] = [[] for _ in window]
    for segment in transcript.segments:
        placed = [dataclasses.replace(w, start_s=at(w.start_s), end_s=at(w.end_s)) for w in segment.words]
        for w in placed:
            words[owner((w.start_s + w.end_s) / 2)].append(w)
        start, end = at(segment.start_s), at(segment.end_s)
        home = owner(placed[0].start_s if placed else start)
        segments[home].append(
            dataclasses.replace(segment, start_s=start, end_s=max(start, end), words=tuple(placed))
        )
    return [
        ChunkResult(first_index + k, chunk, tuple(segments[k]), tuple(words[k]), transcript.language)
        for k, chunk in enumerate(window)
    ]


def _join_prompt(user_prompt: str | None, previous: str) -> str | None:
    tail = " ".join(previous.split()[-_PROMPT_WORDS:])
    joined = " ".join(p for p in (user_prompt, tail) if p)
    return joined or None
