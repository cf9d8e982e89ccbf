"""What the rest of the server speaks to a speech model: decoding options, transcripts, ``Engine``.

Plain dataclasses and a protocol, importing nothing heavy, so that the window runner, the renderers and
the fast tests (with their fake engine) never load CTranslate2 or faster-whisper.
"""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from app.audio.pcm import SAMPLE_RATE, Samples

N_SAMPLES = 30 * SAMPLE_RATE  # Whisper's window: what one encoder pass reads

# Whisper's fallback schedule: retry a window hotter when it decodes as repetitive or unlikely.
DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Per-request decoding parameters."""

    language: str | None  # Whisper code ("en"); None detects it (multilingual models only)
    # "translate": English text from speech in any language (multilingual models only).
    task: Literal["transcribe", "translate"] = "transcribe"
    beam_size: int = 5
    prompt: str | None = None
    temperature: tuple[float, ...] = DEFAULT_TEMPERATURES
    hotwords: str | None = None
    word_timestamps: bool = False
    logprobs: bool = False  # fill Segment.logprobs (costs one alignment pass)
    # A quick rough look at speech still being spoken (live partials, see ``engine.preview``):
    # greedy, text only, untimed; queued behind every other decode.
    preview: bool = False
    # A transcription job's window (``app.jobs``): taken after every waiting request's and live
    # session's, previews included, so jobs use only what live users leave.
    background: bool = False
    # Encode over a 10 s window instead of Whisper's 30 s where the audio fits (see
    # ``passes.window_samples``): live decodes, where latency counts most.
    short_window: bool = False
    # Stop after a first pass that failed Whisper's checks, or left speech for more passes while less
    # sure than this (mean token log-probability), and say so (``DecodeResult.fell_back``): a decode
    # that asks whether the speech is this model's language spends one pass on speech that is not.
    give_up_below: float | None = None


@dataclass(frozen=True, slots=True)
class Word:
    start_s: float
    end_s: float
    word: str
    probability: float


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str  # the token's text, e.g. " Hello"
    logprob: float


@dataclass(frozen=True, slots=True)
class Segment:
    """A decoded segment; times are relative to the audio given to ``transcribe``."""

    start_s: float
    end_s: float
    text: str
    tokens: tuple[int, ...]
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    temperature: float
    words: tuple[Word, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()  # the text tokens', when DecodeOptions.logprobs

    def shifted(self, offset_s: float, floor_s: float = 0.0) -> Segment:
        """The segment (its words too) ``offset_s`` later, starting no earlier than ``floor_s``."""

        def at(t: float) -> float:
            return round(max(t + offset_s, floor_s), 3)

        words = tuple(replace(w, start_s=at(w.start_s), end_s=at(w.end_s)) for w in self.words)
        return replace(self, start_s=at(self.start_s), end_s=at(self.end_s), words=words)


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What one ``transcribe`` call produced."""

    segments: tuple[Segment, ...]
    language: str
    language_probability: float
    # Some pass failed Whisper's checks at temperature 0: faster-whisper's loop decoded the rest
    # (hotter, where the options allow), or the decode gave up (``DecodeOptions.give_up_below``).
    fell_back: bool = False

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()


class Engine(Protocol):
    """What the window runner and live sessions need from a speech model (a fake serves the fast tests)."""

    @property
    def english_only(self) -> bool: ...

    @property
    def parallel_windows(self) -> int:
        """How many windows it decodes side by side (CPU workers; a GPU's batch)."""
        ...

    def submit(
        self, samples: Samples, options: DecodeOptions, encoded: Future[Any] | None = None
    ) -> Future[DecodeResult]:
        """Queue one window (at most 30 s) for decoding; safe to call from any thread. ``encoded``
        is what ``encode_ahead`` returned for these samples."""
        ...

    def encode_ahead(self, samples: Samples) -> Future[Any] | None:
        """Start the encoder pass of a window to be submitted later, once its prompt is known
        (None where there is no idle hardware for it)."""
        ...

    def detect_language(self, samples: Samples, among: Collection[str] = ()) -> tuple[str, float]:
        """The most likely language of (the first 30 s of) the samples and its probability
        (English, certain, on English-only models); blocking. ``among``: only these languages,
        the probability being their share of the probability of them all."""
        ...

    def lane(self) -> AbstractContextManager[None]:
        """Announce a caller that will submit windows one after another (see ``app.engine.batcher``)."""
        ...

    def close(self) -> None: ...
