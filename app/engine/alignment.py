"""Alignment passes over decoded text: word timestamps (faster-whisper's cross-attention alignment)
and token log-probabilities (one teacher-forced pass). The model is handed in: nothing is loaded here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from app.engine.contract import DecodeResult, TokenLogprob
from app.engine.segmentation import Piece

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

N_FRAMES = 3000  # Whisper's window, in mel frames
# faster-whisper's defaults, so that batched decoding matches its sequential decoding.
_PREPEND_PUNCTUATIONS = "\"'“¿([{-"
_APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"  # noqa: RUF001


def align_words(
    model: WhisperModel,
    features: list[np.ndarray],
    frames: list[int],
    encoded: Any,
    tokenizers: list[Tokenizer],
    pieces: list[list[Piece]],
) -> None:
    """faster-whisper's word alignment, batched per language, over every window with text (adds
    each piece's "words" and times it by them): the words show where a pass's speech really ends
    (and are kept where a request asked for them). ``encoded`` is the batch's encoder output."""
    by_language: dict[tuple[int | None, str], list[int]] = {}
    for i in (i for i, p in enumerate(pieces) if p):
        by_language.setdefault((tokenizers[i].task, tokenizers[i].language_code), []).append(i)
    for part in by_language.values():
        # Some windows' rows of the batch's encoder output: on a GPU (no slicing of device memory
        # here) another encoder pass, which is cheap there.
        rows = encoded if len(part) == len(features) else model.encode(np.stack([features[i] for i in part]))
        model.add_word_timestamps(
            [pieces[i] for i in part],
            tokenizers[part[0]],
            rows,
            [frames[i] for i in part],
            _PREPEND_PUNCTUATIONS,
            _APPEND_PUNCTUATIONS,
            last_speech_timestamp=0.0,
        )


def with_token_logprobs(
    model: WhisperModel, tok: Tokenizer, features: np.ndarray, n_frames: int, transcript: DecodeResult
) -> DecodeResult:
    """The transcript with its text tokens' log-probabilities, from one teacher-forced alignment
    pass over its window's padded ``features`` (the text may come from several passes, so it is
    aligned whole)."""
    n_frames = min(n_frames, N_FRAMES)
    encoded = model.encode(features[None])
    texts = [[t for t in s.tokens if t < tok.eot] for s in transcript.segments]
    flat = [t for text in texts for t in text]
    probs = list(model.model.align(encoded, tok.sot_sequence, [flat], n_frames)[0].text_token_probs)
    segments, k = [], 0
    for segment, text in zip(transcript.segments, texts, strict=True):
        logprobs = tuple(
            TokenLogprob(tok.decode([t]), math.log(max(p, 1e-12)))
            for t, p in zip(text, probs[k : k + len(text)], strict=False)
        )
        segments.append(dataclasses.replace(segment, logprobs=logprobs))
        k += len(text)
    return dataclasses.replace(transcript, segments=tuple(segments))
