"""``WhisperEngine``: a CTranslate2 Whisper model behind the ``Engine`` contract; the only module
that imports faster-whisper and CTranslate2.

All model work for one model runs on its batcher's threads (see ``app.engine.batcher``); callers submit
windows of audio and get futures of plain dataclasses back. The engine loads the model, encodes
windows and detects languages; ``first_pass`` runs a batch's beam search, ``passes`` decides which
windows the passes run on, ``segmentation`` where text is cut, ``quality`` what is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np

from app.audio.pcm import SAMPLE_RATE, Samples
from app.engine.alignment import with_token_logprobs
from app.engine.batcher import Batcher, lower_thread_priority
from app.engine.contract import N_SAMPLES, DecodeOptions, DecodeResult
from app.engine.detected import DetectedEncodings
from app.engine.first_pass import EncodedBatch, beam_search
from app.engine.lazy import defer_import
from app.engine.memory import release_free_memory
from app.engine.passes import (
    HOP_SAMPLES,
    Pass,
    Window,
    batches,
    decode_windows,
    sequential,
    trimmed_samples,
    window_samples,
)
from app.engine.placement import CpuLayout, available_cores, cpu_layout, select_placement
from app.engine.preview import preview

defer_import("av")

from faster_whisper import WhisperModel  # noqa: E402
from faster_whisper.audio import pad_or_trim  # noqa: E402
from faster_whisper.tokenizer import Tokenizer  # noqa: E402
from faster_whisper.transcribe import get_suppressed_tokens  # noqa: E402

logger = logging.getLogger(__name__)


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
        # On CPU one more worker, kept for live requests while jobs run (see ``Batcher``).
        reserve = int(cpu)
        self._pool = (
            ThreadPoolExecutor(self.layout.workers, "asr-model", initializer=lower_thread_priority)
            if self.layout.workers > 1
            else None
        )
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}
        self._detected = DetectedEncodings()  # detect_language's encoder outputs (CPU)

        def load() -> None:
            self._model = WhisperModel(
                str(model_path),
                device=self.placement.device,
                device_index=device_index,
                compute_type=self.placement.compute_type,
                cpu_threads=self.layout.threads,
                num_workers=self.layout.workers + reserve,
                local_files_only=local_files_only,
            )

        self._batcher: Batcher[Window, DecodeResult] = Batcher(
            self._decode_batch,
            setup=load,
            on_idle=release_free_memory,
            on_batch=on_batch,
            max_size=1 if cpu else max_batch_size,
            wait_s=batch_wait_s,
            threads=self.layout.workers + reserve,
            reserve=reserve,
        )
        self.parallel_windows = self.layout.workers if cpu else max_batch_size
        # On CPU windows are encoded to their audio's length (``passes.trimmed_samples``); a GPU
        # batches windows of one size, and pads them to Whisper's 30 s.
        self._trim = cpu
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
    ) -> Future[DecodeResult]:
        window = Window(samples, options, encoded, trimmed=self._trim)
        # Encodings made ahead and by detection are of ``_encoder_samples``; a preview encodes its own.
        if window_samples(window) != self._encoder_samples(len(samples)) or options.preview:
            window = Window(samples, options, trimmed=self._trim)
        elif encoded is None and len(samples) <= N_SAMPLES:
            window = Window(samples, options, self._detected.take(samples), trimmed=self._trim)
        return self._batcher.submit(window, priority=2 if options.background else int(options.preview))

    def encode_ahead(self, samples: Samples) -> Future[Any] | None:
        """On CPU, a worker encodes the window while others decode: a window's encoder pass needs
        no prompt, so an upload's next window is encoded while its current one is decoded."""
        if self._pool is None or len(samples) > N_SAMPLES:
            return None
        window = self._encoder_samples(len(samples))
        return self._pool.submit(
            lambda: np.asarray(self._model.encode(self._features(samples, window)[0][None]))
        )

    def transcribe(self, samples: Samples, options: DecodeOptions) -> DecodeResult:
        """Decode one window and wait for it (blocking)."""
        return self.submit(samples, options).result()

    def detect_language(self, samples: Samples, among: Collection[str] = ()) -> tuple[str, float]:
        """Whisper's language detection on the window's encoder output, as faster-whisper runs it
        (one encoder pass: on CPU about the cost of decoding a short sentence)."""
        if self.english_only:
            return "en", 1.0
        head = samples[:N_SAMPLES]
        encoded = self._model.encode(self._features(head, self._encoder_samples(len(head)))[0][None])
        scores = [(str(token)[2:-2], float(p)) for token, p in self._model.model.detect_language(encoded)[0]]
        if self._pool is not None and len(samples) <= N_SAMPLES:  # CPU: a batch is this one window
            self._detected.keep(samples, np.asarray(encoded))
        allowed = [(code, p) for code, p in scores if code in among] if among else scores
        if not allowed:  # none of them is a language this model knows
            return scores[0]
        best, probability = allowed[0]  # sorted, most likely first
        return best, probability / (sum(p for _, p in allowed) if among else 1.0)

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

    def _decode_batch(self, windows: Sequence[Window]) -> list[DecodeResult | BaseException]:
        """Previews apart (see ``engine.preview``), the windows' passes (see ``passes.decode_windows``),
        then their token log-probabilities where a request asked for them."""
        full = [w for w in windows if not w.options.preview]
        decoded = iter(
            decode_windows(full, self._passes, lambda w: sequential(self._model, w)) if full else []
        )
        results = [self._preview(w) if w.options.preview else next(decoded) for w in windows]
        for i, (w, t) in enumerate(zip(windows, list(results), strict=True)):
            if w.options.logprobs and isinstance(t, DecodeResult) and t.segments:
                tok = self._tokenizer(t.language, w.options.task)
                results[i] = with_token_logprobs(self._model, tok, *self._window_features(w), t)
        return results

    def _preview(self, w: Window) -> DecodeResult | BaseException:
        try:
            features, _ = self._window_features(w)
            language = w.options.language if self._model.model.is_multilingual else "en"
            return preview(
                self._model,
                features,
                language,
                lambda lang: self._tokenizer(lang, w.options.task),
                self._prefix(w.options),
                self._suppress,
            )
        except Exception as exc:  # one bad window fails only its own request
            return exc

    def _passes(self, windows: list[Window]) -> list[Pass | None]:
        """One temperature-0 pass over each window, batched where windows can share a batch."""
        passes: list[Pass | None] = [None] * len(windows)
        prefixes = [self._prefix(w.options) for w in windows]
        for indices in batches(windows, prefixes):
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

    def _first_pass(self, windows: list[Window], prefixes: list[list[int]]) -> list[Pass | None]:
        """The windows encoded as one batch, each in its language, then ``first_pass.beam_search``."""
        prepared = [self._window_features(w) for w in windows]
        features, frames = [f for f, _ in prepared], [n for _, n in prepared]
        encoded = self._encode(features, [w.encoded for w in windows])
        languages = self._languages(windows, encoded)
        tokenizers = [
            self._tokenizer(lang, w.options.task) for w, (lang, _) in zip(windows, languages, strict=True)
        ]
        batch = EncodedBatch(windows, features, frames, encoded, languages, tokenizers)
        return beam_search(self._model, batch, prefixes, self._suppress)

    def _encoder_samples(self, n_samples: int) -> int:
        """The encoder window of a window of ``n_samples`` decoded in full (not a live preview)."""
        return trimmed_samples(n_samples) if self._trim else N_SAMPLES

    def _window_features(self, w: Window) -> tuple[np.ndarray, int]:
        return self._features(w.samples, window_samples(w))

    def _features(self, samples: Samples, window: int = N_SAMPLES) -> tuple[np.ndarray, int]:
        """Log-mel features padded to an encoder window of ``window`` samples, and how many frames
        are audio."""
        features = self._model.feature_extractor(samples)
        frames = features.shape[-1] - 1
        return pad_or_trim(features[:, :frames], window // HOP_SAMPLES), frames

    def _encode(
        self, features: list[np.ndarray], ahead: Sequence[Future[np.ndarray] | None] = ()
    ) -> ctranslate2.StorageView:
        """The encoder's output for a batch of windows' padded features (``ahead``: the windows'
        ``encode_ahead`` futures, None where there is none: on CPU, where a batch is one window)."""
        if len(features) == 1 and ahead and ahead[0] is not None:
            return ctranslate2.StorageView.from_array(ahead[0].result())
        return self._model.encode(np.stack(features))

    def _languages(self, windows: list[Window], encoded: ctranslate2.StorageView) -> list[tuple[str, float]]:
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
