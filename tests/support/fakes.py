"""A small fake engine for exact, fast tests of chunking, timelines, SSE framing and errors."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from app.audio.pcm import SAMPLE_RATE, Samples
from app.engine import DecodeOptions, DecodeResult, Segment, Word

SLOT_S = 0.5


class FakeEngine:
    """Says one word ("w<k>") per loud half second of the audio it is given.

    Word k's text records its position in the window, so tests can check the mapping back to
    chunks; ``delay_s`` makes a call slow, and ``calls`` counts them; ``previews_say`` replaces
    the "w" of a preview's words (a preview that mishears).
    """

    def __init__(
        self,
        delay_s: float = 0.0,
        english_only: bool = True,
        encodes_ahead: bool = False,
        hears: str = "en",
        sure: float = 0.9,
        previews_say: str = "w",
        avg_logprob: float = -0.1,
    ) -> None:
        self.previews_say = previews_say
        self.hears = hears  # the language detect_language reports (and a decode without one)
        self.sure = sure  # the probability detect_language gives it
        self.detections = 0
        self.detected_among: list[tuple[str, ...]] = []  # each detection's ``among``
        self.parallel_windows = 1
        self.avg_logprob = avg_logprob  # how sure its decodes are (an English model hearing English: high)
        self.delay_s = delay_s
        self.encodes_ahead = encodes_ahead
        # per submit: its prompt, and whether it came with its own samples encoded ahead
        self.ahead: list[tuple[str | None, bool]] = []
        self._english_only = english_only
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0  # the most calls running at once
        self.options: list[DecodeOptions] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(4, thread_name_prefix="fake-engine")

    @property
    def english_only(self) -> bool:
        return self._english_only

    def submit(
        self, samples: Samples, options: DecodeOptions, encoded: Future[Any] | None = None
    ) -> Future[DecodeResult]:
        with self._lock:
            self.ahead.append((options.prompt, encoded is not None and encoded.result() == _where(samples)))
        return self._executor.submit(self.transcribe, samples, options)

    def encode_ahead(self, samples: Samples) -> Future[Any] | None:
        """A finished "encoding" that names the samples it was made from."""
        if not self.encodes_ahead:
            return None
        future: Future[Any] = Future()
        future.set_result(_where(samples))
        return future

    def detect_language(self, samples: Samples, among: Collection[str] = ()) -> tuple[str, float]:
        with self._lock:
            self.detections += 1
            self.detected_among.append(tuple(among))
        if self._english_only:
            return "en", 1.0
        return (self.hears, self.sure) if not among or self.hears in among else (sorted(among)[0], 1.0)

    def lane(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def transcribe(self, samples: Samples, options: DecodeOptions) -> DecodeResult:
        with self._lock:
            self.calls += 1
            self.options.append(options)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.in_flight -= 1
        slot = int(SLOT_S * SAMPLE_RATE)
        words: list[Word] = []
        for k in range(0, len(samples) // slot):
            piece = samples[k * slot : (k + 1) * slot]
            if float(np.sqrt(np.mean(piece**2))) > 0.01:
                said = self.previews_say if options.preview else "w"
                words.append(Word(k * SLOT_S, (k + 1) * SLOT_S, f" {said}{len(words)}", 0.9))
        if not words:
            return DecodeResult((), options.language or self.hears, 1.0)
        segment = Segment(
            start_s=words[0].start_s,
            end_s=words[-1].end_s,
            text="".join(w.word for w in words),
            tokens=tuple(range(len(words))),
            avg_logprob=self.avg_logprob,
            compression_ratio=1.2,
            no_speech_prob=0.01,
            temperature=0.0,
            words=tuple(words),
        )
        return DecodeResult((segment,), options.language or self.hears, 1.0)


def _where(samples: Samples) -> tuple[int, int]:
    """Which part of an upload's buffer these samples are (windows are views into it)."""
    return samples.__array_interface__["data"][0], len(samples)
