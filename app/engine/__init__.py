"""The inference engine: the contract the server speaks (re-exported here) and its Whisper decoder.

- ``contract``: what a model takes and returns (``DecodeOptions``, ``DecodeResult``, ``Engine``).
- ``placement``: which device and compute type; how many CPU workers of how many threads.
- ``whisper``: ``WhisperEngine`` loads the model, encodes windows, detects languages and hands each
  batch to its passes; the only module that imports faster-whisper and CTranslate2.
- ``batcher``: the inference threads per model that run whatever windows are waiting as batches.
- ``first_pass``: a batch's temperature-0 beam search, each window judged and cut into sentences.
- ``passes``: which windows share a pass, when the rest of a window gets another, when
  faster-whisper's own loop (temperature fallback) takes over.
- ``preview``: a quick rough decode of speech still being spoken (live partial text).
- ``alignment``: word timestamps and token log-probabilities.
- ``segmentation``: where decoded text is cut into segments (sentences; long ones at commas, pauses).
- ``quality``: which text is dropped (silence, hallucinations), when a window falls back; confidence.
- ``detected``: the encoder output language detection made, kept for the same window's decode.
- ``lazy``: deferred imports (PyAV until an upload needs it).
- ``memory``: malloc tuning, so batches reuse their memory and an idle model gives it back.

Importing ``app.engine`` loads the contract only. Imports ``app.audio`` (samples) and nothing higher.
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
