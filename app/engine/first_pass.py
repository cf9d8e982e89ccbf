"""A batch of windows' first pass: one temperature-0 beam search over their encoder output, each
window's result judged (silence, temperature fallback), cut into sentences and timed by its words.

``WhisperEngine`` encodes the windows and picks their languages; ``passes`` decides what happens to
a window this pass leaves undecoded or sends to fallback.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app.engine.alignment import align_words
from app.engine.contract import DecodeResult
from app.engine.passes import Pass, Window, resume_sample
from app.engine.quality import compression_ratio, is_silence, needs_fallback
from app.engine.segmentation import Piece, segment_tokens, timed_segments

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Windows ready to decode together: their padded features and how many frames are audio, the
    encoder output (a CTranslate2 ``StorageView``), each one's language and its tokenizer."""

    windows: list[Window]
    features: list[np.ndarray]
    frames: list[int]
    encoded: Any
    languages: list[tuple[str, float]]
    tokenizers: list[Tokenizer]


def beam_search(
    model: WhisperModel, batch: EncodedBatch, prefixes: list[list[int]], suppress: list[int]
) -> list[Pass | None]:
    """Temperature-0 beam search over the windows as one batch; None where it fails.

    English-only models decode the text only (``<|notimestamps|>``): tiny.en is more accurate so
    (see bench/README.md#throughput), decodes fewer tokens, and never stops early to leave a
    sentence for a next window. The word alignment then times each sentence (a segment).
    """
    windows, frames, tokenizers = batch.windows, batch.frames, batch.tokenizers
    # Multilingual models decode with timestamp tokens, as faster-whisper does: text-only was no
    # better there (on the FLEURS clips better in German and Portuguese, worse in Spanish and French).
    text_only = not model.model.is_multilingual
    prompts = [
        [*p, *tok.sot_sequence, *([tok.no_timestamps] if text_only else [])]
        for p, tok in zip(prefixes, tokenizers, strict=True)
    ]

    generated = model.model.generate(
        batch.encoded,
        prompts,
        beam_size=windows[0].options.beam_size,
        max_length=model.max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=suppress,
    )
    frame_s = model.feature_extractor.time_per_frame
    out: list[Pass | None] = []
    pieces: list[list[Piece]] = []
    finished: list[bool] = []  # the pass closed its text with a timestamp: nothing was left out
    for window, tok, result, n_frames, (language, probability) in zip(
        windows, tokenizers, generated, frames, batch.languages, strict=True
    ):
        tokens = result.sequences_ids[0]
        finished.append(bool(tokens) and tokens[-1] >= tok.timestamp_begin)
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        compression = compression_ratio(tok.decode(tokens).strip())
        no_speech = result.no_speech_prob
        pieces.append([])
        if is_silence(no_speech, avg_logprob, window.doubted):
            out.append(Pass(DecodeResult((), language, probability)))  # silence
            continue
        if needs_fallback(compression, avg_logprob):
            logger.debug("fallback: compression %.2f, avg logprob %.2f", compression, avg_logprob)
            out.append(None)  # needs temperature fallback
            continue
        pieces[-1] = [
            {"seek": 0, "start": 0.0, "end": n_frames * frame_s, "tokens": sentence}
            for sentence in segment_tokens(tok, tokens)
        ]
        for piece in pieces[-1]:
            piece["stats"] = (avg_logprob, compression, no_speech)
        out.append(Pass(DecodeResult((), language, probability)))
    align_words(model, batch.features, frames, batch.encoded, tokenizers, pieces)
    for i, (p, n_frames) in enumerate(zip(out, frames, strict=True)):
        if p is None:
            continue
        text_end = round(pieces[i][-1]["end"] / frame_s) if pieces[i] else n_frames
        found = timed_segments(tokenizers[i], pieces[i], windows[i].options.word_timestamps)
        # Whisper said its text is complete (as faster-whisper reads it: it moves on to the next
        # window); a translation's English words, aligned to other speech, say little.
        done = finished[i] or windows[i].options.task == "translate"
        resume = 0 if done else resume_sample(text_end, n_frames)
        out[i] = Pass(dataclasses.replace(p.transcript, segments=found), resume)
    return out
