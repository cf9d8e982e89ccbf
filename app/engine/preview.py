"""Previews: a quick, rough decode of speech still being spoken (a live session's partial text).

Greedy, text only, no word alignment, no second pass, no temperature fallback: a preview that fails
Whisper's quality checks says nothing (a later one will). Live sessions ask for a short (10 s)
encoder window (see ``passes.window_samples``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from app.engine.contract import DecodeResult, Segment
from app.engine.quality import compression_ratio, is_silence, needs_fallback

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer


def preview(
    model: WhisperModel,
    features: np.ndarray,
    language: str | None,
    tokenizer_for: Callable[[str], Tokenizer],
    prefix: list[int],
    suppress: list[int],
) -> DecodeResult:
    """One greedy text-only pass over ``features`` (padded to its window); ``prefix`` is the
    prompt before <|startoftranscript|>; no ``language``: the most likely one (multilingual models)."""
    encoded = model.encode(features)
    if language is None:
        language = str(model.model.detect_language(encoded)[0][0][0])[2:-2]
    tokenizer = tokenizer_for(language)
    prompt = [*prefix, *tokenizer.sot_sequence, tokenizer.no_timestamps]
    result = model.model.generate(
        encoded,
        [prompt],
        beam_size=1,
        max_length=model.max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=suppress,
    )[0]
    tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
    text = tokenizer.decode(tokens)
    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
    compression = compression_ratio(text)
    if (
        not tokens
        or is_silence(result.no_speech_prob, avg_logprob, False)
        or needs_fallback(compression, avg_logprob)
    ):
        return DecodeResult((), language, 1.0)
    end_s = features.shape[-1] * model.feature_extractor.time_per_frame
    segment = Segment(0.0, end_s, text, tuple(tokens), avg_logprob, compression, result.no_speech_prob, 0.0)
    return DecodeResult((segment,), language, 1.0)
