"""Previews: a quick, rough decode of speech still being spoken (a live session's partial text).

The encoder runs over a window of at least 10 s (the audio plus a second of padding, when longer)
instead of Whisper's padded 30 s: for a few seconds of speech on tiny.en about 5x less work. On the
bench's clips, previews over 10 s windows agreed with each other (and so gave the first delta) as
soon as previews over 30 s ones; over the audio plus a second only, they were cheaper still but
changed their words more often, and the first delta came ~0.8 s later. Greedy, text only, no word
alignment, no second pass, no temperature fallback: a preview that fails Whisper's quality checks
says nothing (a later one will).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from app.engine.contract import Segment, Transcript
from app.engine.quality import is_silence, needs_fallback

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

N_FRAMES = 3000  # Whisper's window, in mel frames (10 ms)
_PAD_FRAMES = 100  # silence after the audio, so its last word is not cut by the window's edge
_MIN_FRAMES = 1000  # 10 s


def preview_features(features: np.ndarray) -> np.ndarray:
    """Log-mel ``features`` of the audio only (80 x n frames), padded with silence (zeros, as
    faster-whisper pads its windows) to 10 s, or to the audio plus a second, at most 30 s."""
    n = min(features.shape[-1], N_FRAMES)
    width = min(N_FRAMES, max((n + _PAD_FRAMES + 1) // 2 * 2, _MIN_FRAMES))
    padded = np.zeros((features.shape[0], width), np.float32)
    padded[:, :n] = features[:, :n]
    return padded


def preview(
    model: WhisperModel,
    features: np.ndarray,
    language: str | None,
    tokenizer_for: Callable[[str], Tokenizer],
    prefix: list[int],
    suppress: list[int],
) -> Transcript:
    """One greedy text-only pass over ``features`` (from ``preview_features``); ``prefix`` is the
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
    compression = len(text.encode()) / max(len(zlib.compress(text.encode())), 1)  # as faster-whisper
    if (
        not tokens
        or is_silence(result.no_speech_prob, avg_logprob, False)
        or needs_fallback(compression, avg_logprob)
    ):
        return Transcript((), language, 1.0)
    end_s = features.shape[-1] * model.feature_extractor.time_per_frame
    segment = Segment(0.0, end_s, text, tuple(tokens), avg_logprob, compression, result.no_speech_prob, 0.0)
    return Transcript((segment,), language, 1.0)
