"""Which decoded text is kept: Whisper's quality thresholds, the hallucination filter, confidence.

A pass over a window is judged by three figures: its mean token log-probability, its text's
compression ratio (repetitive text compresses well) and the model's no-speech probability.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

from app.engine.contract import Segment

# faster-whisper's defaults, so that the batched passes judge a window as its own loop does.
LOG_PROB_THRESHOLD = -1.0
COMPRESSION_RATIO_THRESHOLD = 2.4
NO_SPEECH_THRESHOLD = 0.6
# Whisper is sure a stretch is speech up to this no-speech probability: the speech that doubted
# passes and re-decodes recovered scored 0.004-0.21, the words they invented over noise 0.40-0.60.
SURE_SPEECH = 0.3


def is_silence(no_speech_prob: float, avg_logprob: float, doubted: bool) -> bool:
    """A pass with no text: likely no speech and the text improbable (Whisper's rule), or a pass
    ``doubted`` (the rest of a window after Whisper's text ended, which Whisper judged silent) that
    is not sure speech, whatever the log-probability."""
    if doubted:
        return no_speech_prob > SURE_SPEECH
    return no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD


def compression_ratio(text: str) -> float:
    """How well the text compresses, as faster-whisper measures it (repetitive text: above 2.4)."""
    data = text.encode()
    return len(data) / max(len(zlib.compress(data)), 1)


def needs_fallback(compression_ratio: float, avg_logprob: float) -> bool:
    """A temperature-0 pass that is repetitive or improbable: decoded again, hotter (Whisper's rule)."""
    return compression_ratio > COMPRESSION_RATIO_THRESHOLD or avg_logprob < LOG_PROB_THRESHOLD


def looks_hallucinated(s: Segment) -> bool:
    """A segment whose every temperature failed Whisper's own quality checks (mean log-probability
    below -1) and that is also likely non-speech or repetitive: words invented over tones, hum or
    noise ("I'm going to take a look at ..." over a 1 kHz beep). Whisper keeps such a last attempt;
    a transcription server should not."""
    failed = s.avg_logprob < LOG_PROB_THRESHOLD
    return failed and (s.no_speech_prob > SURE_SPEECH or s.compression_ratio > COMPRESSION_RATIO_THRESHOLD)


def kept(segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
    """The segments a transcript keeps: all but those that look hallucinated."""
    return tuple(s for s in segments if not looks_hallucinated(s))


def mean_logprob(segments: Sequence[Segment]) -> float | None:
    """The decoded tokens' mean log-probability (None when nothing was decoded)."""
    tokens = sum(len(s.tokens) for s in segments)
    return sum(s.avg_logprob * len(s.tokens) for s in segments) / tokens if tokens else None


def token_confidence(segments: tuple[Segment, ...] | list[Segment]) -> float | None:
    """Average token confidence: exp of the token-weighted mean log-probability (the geometric mean
    of the decoded tokens' probabilities); None when nothing was decoded."""
    mean = mean_logprob(segments)
    return None if mean is None else math.exp(mean)
