"""The inference engine: the only module that imports faster_whisper.

``WhisperModel.transcribe`` returns a lazy one-shot generator that runs the model on whichever thread
iterates it, so it is materialised here, inside ``transcribe``, which callers run on a worker thread.
Results leave this module as plain dataclasses.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import ctranslate2
from faster_whisper import WhisperModel

from app.audio import Samples

logger = logging.getLogger(__name__)


# Whisper's fallback schedule: retry a window hotter when it decodes as repetitive or unlikely.
DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Per-request decoding parameters."""

    language: str | None  # Whisper code ("en"); None detects it (multilingual models only)
    beam_size: int = 5
    prompt: str | None = None
    temperature: tuple[float, ...] = DEFAULT_TEMPERATURES
    hotwords: str | None = None
    word_timestamps: bool = False


@dataclass(frozen=True, slots=True)
class Word:
    start_s: float
    end_s: float
    word: str
    probability: float


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


@dataclass(frozen=True, slots=True)
class Transcript:
    """What one ``transcribe`` call produced."""

    segments: tuple[Segment, ...]
    language: str
    language_probability: float

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()


class Engine(Protocol):
    """What the pipeline needs from a speech model (a fake one serves the fast tests)."""

    @property
    def english_only(self) -> bool: ...

    def transcribe(self, samples: Samples, options: DecodeOptions) -> Transcript: ...


@dataclass(frozen=True, slots=True)
class Placement:
    device: str
    compute_type: str


def select_placement(
    device: str,
    compute_type: str,
    *,
    cuda_devices: int | None = None,
    supported: set[str] | None = None,
) -> Placement:
    """Resolve ``auto``/``default`` to a concrete device and compute type.

    ``auto`` takes CUDA when CTranslate2 sees a GPU. ``default`` is int8 on CPU (fastest there with
    near-float accuracy) and float16 on CUDA, falling back to what the device supports. The counts
    are injectable so the choice is tested on machines without a GPU.
    """
    if cuda_devices is None:
        cuda_devices = ctranslate2.get_cuda_device_count()
    if device == "auto":
        device = "cuda" if cuda_devices > 0 else "cpu"
    if device == "cuda" and cuda_devices == 0:
        raise RuntimeError("device 'cuda' was requested but CTranslate2 sees no CUDA device")
    if supported is None:
        supported = set(ctranslate2.get_supported_compute_types(device))
    if compute_type == "default":
        preferences = ["float16", "int8_float16", "float32"] if device == "cuda" else ["int8", "float32"]
        compute_type = next((c for c in preferences if c in supported), "float32")
    elif compute_type not in supported and compute_type != "auto":
        raise RuntimeError(
            f"compute type {compute_type!r} is not supported on {device}; "
            f"supported: {', '.join(sorted(supported))}"
        )
    return Placement(device, compute_type)


class WhisperEngine:
    """A CTranslate2 Whisper model held in memory."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str = "auto",
        compute_type: str = "default",
        device_index: int = 0,
        cpu_threads: int = 0,
        num_workers: int = 1,
        local_files_only: bool = True,
    ) -> None:
        self.placement = select_placement(device, compute_type)
        threads = cpu_threads or max(1, (os.cpu_count() or 1) // num_workers)
        self._model = WhisperModel(
            str(model_path),
            device=self.placement.device,
            device_index=device_index,
            compute_type=self.placement.compute_type,
            cpu_threads=threads,
            num_workers=num_workers,
            local_files_only=local_files_only,
        )
        logger.info(
            "loaded %s on %s (%s, %d threads)",
            model_path,
            self.placement.device,
            self.placement.compute_type,
            threads,
        )

    @property
    def english_only(self) -> bool:
        return not self._model.model.is_multilingual

    def transcribe(self, samples: Samples, options: DecodeOptions) -> Transcript:
        segments, info = self._model.transcribe(
            samples,
            language=options.language if not self.english_only else "en",
            beam_size=options.beam_size,
            temperature=list(options.temperature),
            initial_prompt=options.prompt or None,
            hotwords=options.hotwords or None,
            word_timestamps=options.word_timestamps,
            condition_on_previous_text=False,  # the pipeline passes the previous chunk as prompt
            vad_filter=False,  # chunks come from our own VAD
        )
        result = tuple(_segment(s) for s in segments)  # runs the model, here, on this thread
        kept = tuple(s for s in result if not looks_hallucinated(s))
        return Transcript(kept, info.language, info.language_probability)


def _segment(s: Any) -> Segment:
    return Segment(
        start_s=float(s.start),
        end_s=float(s.end),
        text=str(s.text),
        tokens=tuple(s.tokens),
        avg_logprob=min(0.0, float(s.avg_logprob)),
        compression_ratio=float(s.compression_ratio),
        no_speech_prob=float(s.no_speech_prob),
        temperature=float(s.temperature or 0.0),
        words=tuple(
            Word(float(w.start), float(w.end), str(w.word), float(w.probability)) for w in s.words or ()
        ),
    )


def looks_hallucinated(s: Segment) -> bool:
    """A segment whose every temperature failed Whisper's own quality checks (mean log-probability
    below -1) and that is also likely non-speech or repetitive: words invented over tones, hum or
    noise ("I'm going to take a look at ..." over a 1 kHz beep). Whisper keeps such a last attempt;
    a transcription server should not."""
    failed = s.avg_logprob < -1.0
    return failed and (s.no_speech_prob > 0.3 or s.compression_ratio > 2.4)


def token_confidence(segments: tuple[Segment, ...] | list[Segment]) -> float | None:
    """Average token confidence: exp of the token-weighted mean log-probability (the geometric mean
    of the decoded tokens' probabilities); None when nothing was decoded."""
    counted = [(len(s.tokens), s.avg_logprob) for s in segments if s.tokens]
    total = sum(n for n, _ in counted)
    if total == 0:
        return None
    return math.exp(sum(n * lp for n, lp in counted) / total)
