"""The inference engine: the only module that imports faster_whisper.

All model work for one model runs on its batcher's threads (see ``app.batcher``); callers submit
windows of audio and get futures of plain dataclasses back.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import os
import sys
import types
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import ctranslate2
import numpy as np

from app.audio import SAMPLE_RATE, Samples
from app.batcher import Batcher, lower_thread_priority
from app.memory import release_free_memory


class _Deferred(types.ModuleType):
    """Stands in for a module in ``sys.modules`` until one of its attributes is first used."""

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def _defer_import(name: str) -> None:
    """Make ``import name`` cheap: the module loads when something first uses it (if ever).

    faster-whisper imports PyAV (FFmpeg's libraries: ~16 MiB of RSS and part of a second at start)
    for its own file decoding, which the server never calls: uploads are decoded with soundfile.
    """
    if name not in sys.modules and importlib.util.find_spec(name) is not None:
        sys.modules[name] = _Deferred(name)


_defer_import("av")

from faster_whisper import WhisperModel  # noqa: E402
from faster_whisper.audio import pad_or_trim  # noqa: E402
from faster_whisper.tokenizer import Tokenizer  # noqa: E402
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens  # noqa: E402

logger = logging.getLogger(__name__)

N_SAMPLES = 30 * 16000  # Whisper's window
N_FRAMES = 3000  # its mel frames


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

    def submit(
        self, samples: Samples, options: DecodeOptions, encoded: Future[Any] | None = None
    ) -> Future[Transcript]:
        """Queue one window (at most 30 s) for decoding; safe to call from any thread. ``encoded``
        is what ``encode_ahead`` returned for these samples."""
        ...

    def encode_ahead(self, samples: Samples) -> Future[Any] | None:
        """Start the encoder pass of a window to be submitted later, once its prompt is known
        (None where there is no idle hardware for it)."""
        ...

    def detect_language(self, samples: Samples) -> tuple[str, float]:
        """The most likely language of (the first 30 s of) the samples and its probability
        (English, certain, on English-only models); blocking."""
        ...

    def lane(self) -> AbstractContextManager[None]:
        """Announce a caller that will submit windows one after another (see ``app.batcher``)."""
        ...

    def close(self) -> None: ...


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


def available_cores() -> int:
    """CPU cores this process may run on (the container's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class CpuLayout:
    """How a model uses its CPU threads: ``workers`` model calls at once, of ``threads`` each."""

    workers: int
    threads: int


def cpu_layout(cores: int, max_batch_size: int) -> CpuLayout:
    """Spread the cores over parallel model calls (windows of a batch) before threads within one.

    Threads within one CTranslate2 call synchronise at every operation, and a beam-search step is
    a few small operations: on the 2-core VM two threads made one window's beam search 2-10x slower
    than one thread (4.5 s vs 0.5 s), while two windows decoded side by side, one thread each, took
    about half the time of the same batch on two threads. Each worker keeps the rest of the cores,
    so a many-core machine still gives each call several threads.
    """
    workers = max(1, min(cores, max_batch_size))
    return CpuLayout(workers, max(1, cores // workers))


# faster-whisper's defaults, so that batched decoding matches its sequential decoding.
_PREPEND_PUNCTUATIONS = "\"'“¿([{-"
_APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"  # noqa: RUF001
_LOG_PROB_THRESHOLD = -1.0
_COMPRESSION_RATIO_THRESHOLD = 2.4
_NO_SPEECH_THRESHOLD = 0.6
# A pass whose words end more than this many frames (10 ms each) before the window's end left
# speech undecoded; the rest of the window gets another pass, up to _MAX_PASSES in all. (A window
# ends 0.3-0.6 s after its last word when nothing was skipped.)
_UNFINISHED_FRAMES = 100
# A segment ends after a token ending a sentence (closing quotes aside) where a new sentence starts.
_SENTENCE_ENDS = (".", "!", "?")
_CLOSING_QUOTES = "\"'”’"  # noqa: RUF001
# A sentence is also cut after a comma once it has this many tokens (about 8 s of speech).
_LONG_SENTENCE_TOKENS = 32
# A segment still longer than this (unpunctuated speech: Whisper writes some speakers' text without
# punctuation) is cut at its widest pause between words.
_LONG_SEGMENT_S = 10.0
_ABBREVIATIONS = frozenset(
    ["mr.", "mrs.", "ms.", "dr.", "st.", "jr.", "sr.", "prof.", "mt.", "vs.", "etc.", "no.", "e.g.", "i.e."]
)
_MAX_PASSES = 4
HOP_SAMPLES = 160  # samples per mel frame


@dataclass(frozen=True, slots=True)
class _Window:
    samples: Samples
    options: DecodeOptions
    encoded: Future[np.ndarray] | None = None  # its encoder output, computed ahead
    # The rest of a window after Whisper's text ended: Whisper judged it silent, so its text counts
    # only where Whisper is sure it is speech (no-speech probability at most the threshold,
    # whatever the log-probability).
    doubted: bool = False


@dataclass(frozen=True, slots=True)
class _Rest:
    """What is left of a window to decode, and where it starts in the window (in samples)."""

    window: _Window
    offset: int


@dataclass(frozen=True, slots=True)
class _Pass:
    """One pass's segments; ``resume_sample`` > 0 where its words end before the window's end."""

    transcript: Transcript
    resume_sample: int = 0


class WhisperEngine:
    """A CTranslate2 Whisper model whose inference threads decode windows in batches.

    Each window's decoding passes (temperature 0, beam search, the window's own prompt) run with
    whatever other windows are waiting (other parts of the same upload and other requests): as one
    batch on a GPU; on CPU each worker decodes one window and takes the next waiting one as soon as
    it is done. The rare window that fails Whisper's quality checks (repetitive, improbable) is
    decoded again by faster-whisper's sequential loop, temperature fallback included, so batching
    changes speed, not results.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str = "auto",
        compute_type: str = "default",
        device_index: int = 0,
        cpu_threads: int = 0,
        max_batch_size: int = 8,
        batch_wait_s: float = 0.2,
        local_files_only: bool = True,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self.placement = select_placement(device, compute_type)
        cores = cpu_threads or available_cores()
        # On a GPU the device does the work: one batched call at a time. On CPU each worker decodes
        # one window at a time, taking the next as soon as it is done (no batch waits for its
        # slowest window), and a pool encodes lanes' next windows ahead.
        cpu = self.placement.device == "cpu"
        self.layout = cpu_layout(cores, max_batch_size) if cpu else CpuLayout(1, cores)
        self._pool = (
            ThreadPoolExecutor(self.layout.workers, "asr-model", initializer=lower_thread_priority)
            if self.layout.workers > 1
            else None
        )
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}

        def load() -> None:
            self._model = WhisperModel(
                str(model_path),
                device=self.placement.device,
                device_index=device_index,
                compute_type=self.placement.compute_type,
                cpu_threads=self.layout.threads,
                num_workers=self.layout.workers,
                local_files_only=local_files_only,
            )

        self._batcher: Batcher[_Window, Transcript] = Batcher(
            self._decode_batch,
            setup=load,
            on_idle=release_free_memory,
            on_batch=on_batch,
            max_size=1 if cpu else max_batch_size,
            wait_s=batch_wait_s,
            threads=self.layout.workers,
        )
        self._suppress = get_suppressed_tokens(self._tokenizer("en"), [-1])
        if self.placement.device == "cuda":
            # CUDA sets up its kernels on first use (about a second): pay that here, not in the first
            # request. On CPU the first decode measured no slower than later ones, so no warm-up.
            self.transcribe(np.zeros(SAMPLE_RATE, np.float32), DecodeOptions(language=None, beam_size=1))
        logger.info(
            "loaded %s on %s (%s, %d x %d threads, batches of up to %d)",
            model_path,
            self.placement.device,
            self.placement.compute_type,
            self.layout.workers,
            self.layout.threads,
            max_batch_size,
        )

    @property
    def english_only(self) -> bool:
        return not self._model.model.is_multilingual

    def submit(
        self, samples: Samples, options: DecodeOptions, encoded: Future[Any] | None = None
    ) -> Future[Transcript]:
        return self._batcher.submit(_Window(samples, options, encoded))

    def encode_ahead(self, samples: Samples) -> Future[Any] | None:
        """On CPU, a worker encodes the window while others decode: a window's encoder pass needs
        no prompt, so an upload's next window is encoded while its current one is decoded."""
        if self._pool is None or len(samples) > N_SAMPLES:
            return None
        return self._pool.submit(lambda: np.asarray(self._model.encode(self._features(samples)[0][None])))

    def transcribe(self, samples: Samples, options: DecodeOptions) -> Transcript:
        """Decode one window and wait for it (blocking)."""
        return self.submit(samples, options).result()

    def detect_language(self, samples: Samples) -> tuple[str, float]:
        """Whisper's language detection on the window's encoder output, as faster-whisper runs it
        (one encoder pass: on CPU about the cost of decoding a short sentence)."""
        if self.english_only:
            return "en", 1.0
        encoded = self._model.encode(self._features(samples[:N_SAMPLES])[0][None])
        (best, probability), *_ = self._model.model.detect_language(encoded)[0]
        return str(best)[2:-2], float(probability)

    def lane(self) -> AbstractContextManager[None]:
        return self._batcher.lane()

    def close(self) -> None:
        self._batcher.close()
        if self._pool is not None:
            self._pool.shutdown()

    # Everything below runs on the batcher's threads.

    def _tokenizer(self, language: str, task: str = "transcribe") -> Tokenizer:
        if (task, language) not in self._tokenizers:
            self._tokenizers[task, language] = Tokenizer(
                self._model.hf_tokenizer, self._model.model.is_multilingual, task=task, language=language
            )
        return self._tokenizers[task, language]

    def _decode_batch(self, windows: Sequence[_Window]) -> list[Transcript | BaseException]:
        """Decode the windows in batched passes; where a pass's words end before its window's end
        (Whisper skipped speech, typically a new speaker after a pause), the rest of the window is
        decoded in the next pass, with the text so far as its prompt."""
        segments: list[list[Segment]] = [[] for _ in windows]
        languages: list[tuple[str, float] | None] = [None] * len(windows)
        pending = {i: _Rest(w, 0) for i, w in enumerate(windows)}
        fallback: dict[int, _Rest] = {}
        for _ in range(_MAX_PASSES):
            if not pending:
                break
            order = list(pending)
            passes = self._passes([pending[i].window for i in order])
            following: dict[int, _Rest] = {}
            for i, done in zip(order, passes, strict=True):
                rest = pending[i]
                if done is None:  # sampled temperatures, too long, or failed Whisper's checks
                    fallback[i] = rest
                    continue
                transcript = done.transcript
                segments[i] += _shifted(transcript.segments, rest.offset / SAMPLE_RATE, _end(segments[i]))
                languages[i] = languages[i] or (transcript.language, transcript.language_probability)
                if done.resume_sample:
                    options = rest.window.options
                    tail = dataclasses.replace(
                        options,
                        language=options.language or transcript.language,
                        prompt=" ".join(p for p in (options.prompt, transcript.text) if p) or None,
                    )
                    following[i] = _Rest(
                        _Window(rest.window.samples[done.resume_sample :], tail, doubted=True),
                        rest.offset + done.resume_sample,
                    )
            pending = following
        fallback.update(pending)  # still unfinished after _MAX_PASSES
        results: list[Transcript | BaseException] = []
        for i, w in enumerate(windows):
            if i in fallback:
                rest = fallback[i]
                logger.debug("decoding %.1f s sequentially", len(rest.window.samples) / SAMPLE_RATE)
                try:
                    alone = self._sequential(rest.window)
                except Exception as exc:  # one bad window fails only its own request
                    results.append(exc)
                    continue
                segments[i] += _shifted(alone.segments, rest.offset / SAMPLE_RATE, _end(segments[i]))
                languages[i] = languages[i] or (alone.language, alone.language_probability)
            language, probability = languages[i] or (w.options.language or "en", 1.0)
            results.append(Transcript(_kept(tuple(segments[i])), language, probability))
        return self._with_logprobs(windows, results)

    def _passes(self, windows: list[_Window]) -> list[_Pass | None]:
        """One temperature-0 pass over each window, batched where windows can share a batch."""
        passes: list[_Pass | None] = [None] * len(windows)
        prefixes = [self._prefix(w.options) for w in windows]
        for indices in self._batches(windows, prefixes):
            try:
                decoded = self._first_pass([windows[i] for i in indices], [prefixes[i] for i in indices])
            except Exception:  # e.g. out of memory for the batch: each window alone, sequentially
                logger.exception("batched decoding of %d windows failed", len(indices))
                continue
            for i, done in zip(indices, decoded, strict=True):
                passes[i] = done
        return passes

    def _prefix(self, options: DecodeOptions) -> list[int]:
        """The prompt tokens before <|startoftranscript|>: hotwords and previous text (as in
        faster-whisper's ``get_prompt``)."""
        tok, half = self._tokenizer("en"), self._model.max_length // 2
        hot = tok.encode(" " + options.hotwords.strip())[: half - 1] if options.hotwords else []
        previous = tok.encode(" " + options.prompt.strip())[-(half - 1) :] if options.prompt else []
        return [tok.sot_prev, *hot, *previous] if hot or previous else []

    def _batches(self, windows: Sequence[_Window], prefixes: list[list[int]]) -> list[list[int]]:
        """Windows that can share a first pass, grouped; the others are left out.

        A batched call needs one beam size, and <|startoftranscript|> at the same position in every
        prompt: windows with previous text share it with their prompts cut to the shortest one's
        length (the most recent text is kept); hotwords are never cut. (Only on a GPU: on CPU a
        batch is one window, so a window's text never depends on what else is waiting.)
        """
        groups: dict[tuple[int, str, int], list[int]] = {}
        for i, w in enumerate(windows):
            if w.options.temperature[:1] != (0.0,) or len(w.samples) > N_SAMPLES:
                continue
            if not prefixes[i]:
                key = (w.options.beam_size, "none", 0)
            elif w.options.hotwords:
                key = (w.options.beam_size, "hotwords", len(prefixes[i]))
            else:
                key = (w.options.beam_size, "previous", 0)
            groups.setdefault(key, []).append(i)
        for (_, kind, _), indices in groups.items():
            if kind == "previous":
                keep = min(len(prefixes[i]) for i in indices) - 1
                for i in indices:
                    prefixes[i][1:] = prefixes[i][len(prefixes[i]) - keep :]
        return list(groups.values())

    def _first_pass(self, windows: list[_Window], prefixes: list[list[int]]) -> list[_Pass | None]:
        """Temperature-0 beam search over the windows as one batch; None where it fails.

        English-only models decode the text only (``<|notimestamps|>``): tiny.en is more accurate so (on
        ../shared/eval, 8.81% -> 7.99% WER on the short clips, 7.24% -> 6.56% on the long files),
        decodes fewer tokens, and never stops early to leave a sentence for a next window. The word
        alignment then times each sentence (a segment).
        """
        model = self._model
        prepared = [self._features(w.samples) for w in windows]
        features, frames = [f for f, _ in prepared], [n for _, n in prepared]
        encoded = self._encode(features, [w.encoded for w in windows])
        languages = self._languages(windows, encoded)
        tokenizers = [
            self._tokenizer(lang, w.options.task) for w, (lang, _) in zip(windows, languages, strict=True)
        ]
        # Multilingual models decode with timestamp tokens, as faster-whisper does: text-only was no
        # better there (on the FLEURS clips better in German and Portuguese, worse in Spanish and French).
        text_only = self.english_only
        prompts = [
            [*p, *tok.sot_sequence, *([tok.no_timestamps] if text_only else [])]
            for p, tok in zip(prefixes, tokenizers, strict=True)
        ]

        generated = model.model.generate(
            encoded,
            prompts,
            beam_size=windows[0].options.beam_size,
            max_length=model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )
        frame_s = model.feature_extractor.time_per_frame
        out: list[_Pass | None] = []
        pieces: list[list[dict[str, Any]]] = []
        finished: list[bool] = []  # the pass closed its text with a timestamp: nothing was left out
        for window, tok, result, n_frames, (language, probability) in zip(
            windows, tokenizers, generated, frames, languages, strict=True
        ):
            tokens = result.sequences_ids[0]
            finished.append(bool(tokens) and tokens[-1] >= tok.timestamp_begin)
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            compression = get_compression_ratio(tok.decode(tokens).strip())
            no_speech = result.no_speech_prob
            pieces.append([])
            if no_speech > _NO_SPEECH_THRESHOLD and (avg_logprob < _LOG_PROB_THRESHOLD or window.doubted):
                out.append(_Pass(Transcript((), language, probability)))  # silence
                continue
            if compression > _COMPRESSION_RATIO_THRESHOLD or avg_logprob < _LOG_PROB_THRESHOLD:
                logger.debug("fallback: compression %.2f, avg logprob %.2f", compression, avg_logprob)
                out.append(None)  # needs temperature fallback
                continue
            pieces[-1] = [
                {"seek": 0, "start": 0.0, "end": n_frames * frame_s, "tokens": sentence}
                for sentence in _segment_tokens(tok, tokens)
            ]
            for piece in pieces[-1]:
                piece["stats"] = (avg_logprob, compression, no_speech)
            out.append(_Pass(Transcript((), language, probability)))
        self._add_word_timestamps(features, frames, encoded, tokenizers, pieces)
        for i, (p, n_frames) in enumerate(zip(out, frames, strict=True)):
            if p is None:
                continue
            text_end = round(pieces[i][-1]["end"] / frame_s) if pieces[i] else n_frames
            resume = text_end if 0 < text_end < n_frames - _UNFINISHED_FRAMES else 0
            if finished[i] or windows[i].options.task == "translate":
                # Whisper said its text is complete (as faster-whisper reads it: it moves on to the
                # next window); a translation's English words, aligned to other speech, say little.
                resume = 0
            segments = _segments(tokenizers[i], pieces[i], windows[i].options.word_timestamps)
            out[i] = _Pass(dataclasses.replace(p.transcript, segments=segments), resume * HOP_SAMPLES)
        return out

    def _features(self, samples: Samples) -> tuple[np.ndarray, int]:
        """A window's log-mel features padded to 30 s, and how many frames are audio."""
        features = self._model.feature_extractor(samples)
        frames = features.shape[-1] - 1
        return pad_or_trim(features[:, :frames]), frames

    def _encode(
        self, features: list[np.ndarray], ahead: Sequence[Future[np.ndarray] | None] = ()
    ) -> ctranslate2.StorageView:
        """The encoder's output for a batch of windows' padded features (``ahead``: the windows'
        ``encode_ahead`` futures, None where there is none: on CPU, where a batch is one window)."""
        if len(features) == 1 and ahead and ahead[0] is not None:
            return ctranslate2.StorageView.from_array(ahead[0].result())
        return self._model.encode(np.stack(features))

    def _rows(
        self, encoded: ctranslate2.StorageView, rows: list[int], features: list[np.ndarray], frames: list[int]
    ) -> ctranslate2.StorageView:
        """Some windows' rows of a batch's encoder output: on a GPU (no slicing of device memory
        here) another encoder pass, which is cheap there."""
        if len(rows) == len(features):
            return encoded
        return self._encode([features[i] for i in rows])

    def _languages(self, windows: list[_Window], encoded: ctranslate2.StorageView) -> list[tuple[str, float]]:
        """Each window's language: the requested one, or the most likely on multilingual models."""
        if not self._model.model.is_multilingual:
            return [("en", 1.0)] * len(windows)
        detected: list[tuple[str, float]] = []
        if any(w.options.language is None for w in windows):
            detected = [
                (str(r[0][0])[2:-2], float(r[0][1])) for r in self._model.model.detect_language(encoded)
            ]
        return [
            (w.options.language, 1.0) if w.options.language else detected[i] for i, w in enumerate(windows)
        ]

    def _add_word_timestamps(
        self,
        features: list[np.ndarray],
        frames: list[int],
        encoded: ctranslate2.StorageView,
        tokenizers: list[Tokenizer],
        pieces: list[list[dict[str, Any]]],
    ) -> None:
        """faster-whisper's word alignment, batched per language, over every window with text: the
        words show where a pass's speech really ends (and are kept where a request asked for them)."""
        by_language: dict[tuple[int, str], list[int]] = {}
        for i in (i for i, p in enumerate(pieces) if p):
            by_language.setdefault((tokenizers[i].task, tokenizers[i].language_code), []).append(i)
        for part in by_language.values():
            self._model.add_word_timestamps(
                [pieces[i] for i in part],
                tokenizers[part[0]],
                self._rows(encoded, part, features, frames),
                [frames[i] for i in part],
                _PREPEND_PUNCTUATIONS,
                _APPEND_PUNCTUATIONS,
                last_speech_timestamp=0.0,
            )

    def _sequential(self, window: _Window) -> Transcript:
        """faster-whisper's own loop, temperature fallback included (with timestamps: its segments
        need no word alignment to be timed)."""
        options = window.options
        segments, info = self._model.transcribe(
            window.samples,
            language=options.language if not self.english_only else "en",
            task=options.task,
            beam_size=options.beam_size,
            temperature=list(options.temperature),
            initial_prompt=options.prompt or None,
            hotwords=options.hotwords or None,
            word_timestamps=options.word_timestamps,
            condition_on_previous_text=True,  # the text so far prompts the rest of the window
            vad_filter=False,  # windows come from our own VAD
        )
        decoded = tuple(_from_library(s) for s in segments)  # runs the model, here
        return Transcript(_kept(decoded), info.language, info.language_probability)

    def _with_logprobs(
        self, windows: Sequence[_Window], transcripts: list[Transcript | BaseException]
    ) -> list[Transcript | BaseException]:
        """Token log-probabilities from one teacher-forced alignment pass per window that asked (the
        window's text may come from several passes, so it is aligned whole)."""

        def aligned(i: int) -> Transcript:
            transcript = transcripts[i]
            assert isinstance(transcript, Transcript)
            tok = self._tokenizer(transcript.language, windows[i].options.task)
            features, n_frames = self._features(windows[i].samples)
            n_frames = min(n_frames, N_FRAMES)
            encoded = self._model.encode(features[None])
            texts = [[t for t in s.tokens if t < tok.eot] for s in transcript.segments]
            flat = [t for text in texts for t in text]
            probs = list(
                self._model.model.align(encoded, tok.sot_sequence, [flat], n_frames)[0].text_token_probs
            )
            segments, k = [], 0
            for segment, text in zip(transcript.segments, texts, strict=True):
                logprobs = tuple(
                    TokenLogprob(tok.decode([t]), math.log(max(p, 1e-12)))
                    for t, p in zip(text, probs[k : k + len(text)], strict=False)
                )
                segments.append(dataclasses.replace(segment, logprobs=logprobs))
                k += len(text)
            return dataclasses.replace(transcript, segments=tuple(segments))

        wanted = [
            i
            for i, (w, t) in enumerate(zip(windows, transcripts, strict=True))
            if w.options.logprobs and isinstance(t, Transcript) and t.segments
        ]
        results = list(transcripts)
        for i in wanted:
            results[i] = aligned(i)
        return results


def _segment_tokens(tok: Tokenizer, tokens: list[int]) -> list[list[int]]:
    """A pass's text tokens cut into segments: sentences (after a token that ends one, where a word
    that is not lower-case follows), and a long sentence also after a comma, so a subtitle cue stays
    readable."""
    text = [t for t in tokens if t < tok.eot]
    segments: list[list[int]] = [[]]
    for k, token in enumerate(text):
        segments[-1].append(token)
        following = tok.decode([text[k + 1]]) if k + 1 < len(text) else ""
        if not following.startswith(" "):  # the next token continues this word
            continue
        piece = tok.decode([token]).rstrip()
        if piece.endswith((",", ";", ":")) and len(segments[-1]) >= _LONG_SENTENCE_TOKENS:
            segments.append([])
        elif piece.rstrip(_CLOSING_QUOTES).endswith(_SENTENCE_ENDS) and not following[1:2].islower():
            last_word = tok.decode(segments[-1]).split()[-1].lower()
            initial = len(last_word) == 2 and last_word[0].isalpha()  # "J." in "John F. Kennedy"
            if last_word not in _ABBREVIATIONS and not initial:
                segments.append([])
    return [s for s in segments if s]


def _segments(tok: Tokenizer, pieces: list[dict[str, Any]], with_words: bool) -> tuple[Segment, ...]:
    """A pass's sentences, timed by their words, as segments (dropping empty ones, as faster-whisper
    does)."""
    segments = []
    for piece in (part for whole in pieces for part in _split_at_pauses(tok, whole)):
        text = tok.decode(piece["tokens"])
        if piece["start"] == piece["end"] or not text.strip():
            continue
        avg_logprob, compression, no_speech = piece["stats"]
        segments.append(
            Segment(
                start_s=float(piece["start"]),
                end_s=float(piece["end"]),
                text=text,
                tokens=tuple(piece["tokens"]),
                avg_logprob=min(0.0, float(avg_logprob)),
                compression_ratio=float(compression),
                no_speech_prob=float(no_speech),
                temperature=0.0,
                words=tuple(
                    Word(float(w["start"]), float(w["end"]), str(w["word"]), float(w["probability"]))
                    for w in (piece.get("words", ()) if with_words else ())
                ),
            )
        )
    return tuple(segments)


def _split_at_pauses(tok: Tokenizer, piece: dict[str, Any]) -> list[dict[str, Any]]:
    """A sentence longer than ``_LONG_SEGMENT_S`` cut where the speaker most likely paused, each
    part at least a quarter of its length, again until every part is short enough or cannot be cut.

    The word alignment leaves no gaps: a pause shows as the words around it lasting longer than
    words do (beyond twice the median, faster-whisper's own bound). A capitalised word (not "I")
    where Whisper wrote no punctuation often starts a sentence, which breaks near ties.
    """
    words = piece.get("words") or []
    duration = piece["end"] - piece["start"]
    if duration <= _LONG_SEGMENT_S or len(words) < 2:
        return [piece]
    lengths = [w["end"] - w["start"] for w in words]
    usual = 2 * float(np.median(lengths))
    # Where each word ends in the tokens: the decoded prefix has the length of the words so far.
    ends: dict[int, int] = {}
    for j in range(1, len(piece["tokens"]) + 1):
        ends.setdefault(len(tok.decode(piece["tokens"][:j])), j)
    cuts, text = [], ""
    for k in range(1, len(words)):
        text += words[k - 1]["word"]
        head, tail = words[k - 1]["end"] - piece["start"], piece["end"] - words[k]["start"]
        if len(text) not in ends or min(head, tail) < duration / 4:
            continue
        following = words[k]["word"].strip()
        pause = words[k]["start"] - words[k - 1]["end"]
        pause += max(lengths[k - 1] - usual, 0.0) + max(lengths[k] - usual, 0.0)
        capital = following[:1].isupper() and not (following[:1] == "I" and following[1:2] in ("", "'"))
        cuts.append((pause + 0.25 * capital, k, ends[len(text)]))
    if not cuts:
        return [piece]
    _, k, j = max(cuts)
    first = {**piece, "tokens": piece["tokens"][:j], "end": words[k - 1]["end"], "words": words[:k]}
    second = {**piece, "tokens": piece["tokens"][j:], "start": words[k]["start"], "words": words[k:]}
    return _split_at_pauses(tok, first) + _split_at_pauses(tok, second)


def _shifted(segments: Sequence[Segment], offset_s: float, floor_s: float) -> list[Segment]:
    """A later pass's segments on the window's timeline, starting no earlier than ``floor_s`` (where
    the earlier pass's text ended: Whisper may restart a few frames before it)."""

    def at(t: float) -> float:
        return round(max(t + offset_s, floor_s), 3)

    return [
        dataclasses.replace(
            s,
            start_s=at(s.start_s),
            end_s=at(s.end_s),
            words=tuple(dataclasses.replace(w, start_s=at(w.start_s), end_s=at(w.end_s)) for w in s.words),
        )
        for s in segments
    ]


def _end(segments: list[Segment]) -> float:
    return segments[-1].end_s if segments else 0.0


def _from_library(s: Any) -> Segment:
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


def _kept(segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
    return tuple(s for s in segments if not looks_hallucinated(s))


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
