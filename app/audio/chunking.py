"""Speech chunks (``Chunk``) and how per-frame speech flags become them, as the flags come in.

The policy is pure (flags in, chunk boundaries out), so it is tested exactly without audio. Fed a
block of flags at a time, ``Chunker`` hands out each chunk once no later flag can change it, so a
stream's first window can start while the rest of the upload is still being decoded; fed all the
flags at once (``chunk_frames``) it gives the same chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.audio.pcm import SAMPLE_RATE
from app.audio.vad import FRAME_MS, FRAME_SAMPLES
from app.config import VadSettings


@dataclass(frozen=True, slots=True)
class ChunkingOptions:
    """Resolved server_vad parameters for one request."""

    prefix_padding_ms: int
    silence_duration_ms: int
    aggressiveness: int
    suffix_padding_ms: int
    min_speech_ms: int
    max_chunk_s: float


class VadOverrides(Protocol):
    """A request's ``chunking_strategy`` or a live session's ``turn_detection``: None keeps the default."""

    @property
    def prefix_padding_ms(self) -> int | None: ...
    @property
    def silence_duration_ms(self) -> int | None: ...
    @property
    def threshold(self) -> float | None: ...


def chunking_options(vad: VadSettings, overrides: VadOverrides | None = None) -> ChunkingOptions:
    """The client's server_vad values over the server's VAD defaults."""
    prefix = None if overrides is None else overrides.prefix_padding_ms
    silence = None if overrides is None else overrides.silence_duration_ms
    threshold = None if overrides is None else overrides.threshold
    return ChunkingOptions(
        prefix_padding_ms=vad.prefix_padding_ms if prefix is None else prefix,
        silence_duration_ms=vad.silence_duration_ms if silence is None else silence,
        # webrtcvad's aggressiveness is round(3 * threshold): higher means more sure before speech.
        aggressiveness=vad.aggressiveness if threshold is None else round(3 * threshold),
        suffix_padding_ms=vad.suffix_padding_ms,
        min_speech_ms=vad.min_speech_ms,
        max_chunk_s=vad.max_chunk_s,
    )


@dataclass(frozen=True, slots=True)
class Chunk:
    """A span of the upload to transcribe, in samples of the 16 kHz timeline."""

    start: int
    end: int
    speech_start: int | None = None  # the first speech frame (start includes prefix padding)

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def speech_start_s(self) -> float:
        return (self.start if self.speech_start is None else self.speech_start) / SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


class Chunker:
    """A chunk opens at the first speech frame and closes once ``silence_duration_ms`` of non-speech
    follows; it starts ``prefix_padding_ms`` before its first speech frame (never inside the previous
    chunk) and keeps up to ``suffix_padding_ms`` of the trailing silence. Chunks with less than
    ``min_speech_ms`` of speech are dropped, and long ones are split at their longest pause (a piece
    is handed out as soon as its window has been seen, so continuous speech does not hold chunks back).
    """

    def __init__(self, opts: ChunkingOptions) -> None:
        self._silence = max(1, _frames(opts.silence_duration_ms))
        self._lead = _frames(opts.prefix_padding_ms)
        self._tail = _frames(opts.suffix_padding_ms)
        self._min_speech = max(1, _frames(opts.min_speech_ms))
        self._max_frames = max(1, int(opts.max_chunk_s * 1000) // FRAME_MS)
        self._flags: list[bool] = []
        self._start: int | None = None  # the open span's first speech frame
        self._last_speech = 0
        self._speech = 0  # speech frames in the open span so far
        self._cursor = 0  # where the open span's pieces not yet handed out begin
        self._closed: list[tuple[int, int, int]] = []  # (piece start, last speech + 1, speech frames)
        self._prev_end = 0

    def feed(self, flags: list[bool]) -> list[Chunk]:
        """The chunks that are final once ``flags`` (the next frames, all whole) are known."""
        for is_speech in flags:
            i = len(self._flags)
            self._flags.append(is_speech)
            if is_speech:
                if self._start is None:
                    self._start, self._speech = i, 0
                    self._cursor = max(i - min(self._lead, i), 0)
                self._last_speech = i + 1
                self._speech += 1
            elif self._start is not None and i + 1 - self._last_speech >= self._silence:
                self._closed.append((self._cursor, self._last_speech, self._speech))
                self._start = None
        return self._ready(None)

    def finish(self, total_samples: int) -> list[Chunk]:
        """The remaining chunks, once the upload (``total_samples`` long) has ended."""
        if self._start is not None:
            self._closed.append((self._cursor, self._last_speech, self._speech))
            self._start = None
        return self._ready(total_samples)

    def _ready(self, total_samples: int | None) -> list[Chunk]:
        chunks: list[Chunk] = []
        known = len(self._flags)
        while self._closed:
            begin, last, speech = self._closed[0]
            end = min(last + self._tail, known)
            # Before the end, a piece ending at the last known frame waits: that frame may be partial.
            if total_samples is None and last + self._tail >= known:
                return chunks
            self._closed.pop(0)
            if speech >= self._min_speech:
                chunks += self._pieces(begin, end, total_samples)
        # The open span: cut off its first max_chunk_s once it has run past them with enough speech
        # (the cut only looks at flags inside that window, so it is the one chunk_frames makes).
        while (
            self._start is not None
            and self._speech >= self._min_speech
            and self._last_speech - self._cursor > self._max_frames
        ):
            cut = self._cut(self._cursor)
            chunks += self._pieces(self._cursor, cut, total_samples)
            self._cursor = cut
        return chunks

    def _pieces(self, begin: int, end: int, total_samples: int | None) -> list[Chunk]:
        chunks: list[Chunk] = []
        while True:
            piece_end = self._cut(begin) if end - begin > self._max_frames else end
            start_sample = max(begin * FRAME_SAMPLES, self._prev_end)
            end_sample = piece_end * FRAME_SAMPLES
            if total_samples is not None:
                end_sample = min(end_sample, total_samples)
            speech = next((i for i in range(begin, piece_end) if self._flags[i]), begin)
            if end_sample > start_sample:
                chunks.append(Chunk(start_sample, end_sample, max(speech * FRAME_SAMPLES, start_sample)))
                self._prev_end = end_sample
            if piece_end == end:
                return chunks
            begin = piece_end

    def _cut(self, begin: int) -> int:
        """Where a piece starting at ``begin`` ends: the middle of the longest pause in the last two
        thirds of its window, or the window's end when it has none."""
        window_end = begin + self._max_frames
        return _longest_pause_middle(self._flags, begin + self._max_frames // 3, window_end) or window_end


def chunk_frames(flags: list[bool], total_samples: int, opts: ChunkingOptions) -> list[Chunk]:
    """All of an upload's chunks from all of its speech flags (see ``Chunker``)."""
    chunker = Chunker(opts)
    return chunker.feed(flags) + chunker.finish(total_samples)


def _longest_pause_middle(flags: list[bool], lo: int, hi: int) -> int | None:
    best_len, best_mid = 0, None
    run_start: int | None = None
    for i in range(lo, hi + 1):
        silent = i < hi and not flags[i]
        if silent and run_start is None:
            run_start = i
        elif not silent and run_start is not None:
            if i - run_start > best_len:
                best_len, best_mid = i - run_start, (run_start + i) // 2
            run_start = None
    return best_mid


def _frames(ms: int) -> int:
    return (ms + FRAME_MS - 1) // FRAME_MS
