"""The inference engine: the contract the server speaks (re-exported here) and its Whisper decoder.

- ``contract``: what a model takes and returns (``DecodeOptions``, ``DecodeResult``, ``Engine``).
- ``placement``: which device and compute type; how many CPU workers of how many threads.
- ``whisper``: ``WhisperEngine`` loads the model, batches windows and makes the model calls; the only
  module that imports faster-whisper and CTranslate2.
- ``passes``: which windows share a pass, when the rest of a window gets another, when
  faster-whisper's own loop (temperature fallback) takes over.
- ``preview``: a quick rough decode of speech still being spoken (live partial text).
- ``alignment``: word timestamps and token log-probabilities.
- ``segmentation``: where decoded text is cut into segments (sentences; long ones at commas, pauses).
- ``quality``: which text is dropped (silence, hallucinations), when a window falls back; confidence.

Importing ``app.engine`` loads the contract only.
"""

from app.engine.contract import (
    DEFAULT_TEMPERATURES,
    N_SAMPLES,
    DecodeOptions,
    DecodeResult,
    Engine,
    Segment,
    TokenLogprob,
    Word,
)

__all__ = [
    "DEFAULT_TEMPERATURES",
    "N_SAMPLES",
    "DecodeOptions",
    "DecodeResult",
    "Engine",
    "Segment",
    "TokenLogprob",
    "Word",
]
