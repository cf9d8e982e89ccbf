"""The shared evaluation set (``../shared/eval``, read in place) and WER scoring."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import soundfile as sf
from whisper_normalizer.english import EnglishTextNormalizer

EVAL_DIR = Path(os.environ.get("ASR_EVAL_DIR", Path(__file__).resolve().parents[3] / "shared" / "eval"))

_normalizer = EnglishTextNormalizer()


@dataclass(frozen=True)
class Clip:
    id: str
    path: Path
    text: str
    kind: str
    duration_s: float
    raw: dict[str, Any]


def clips(kind: str | None = None) -> list[Clip]:
    """Manifest entries (optionally of one kind); fails loudly when the set is missing."""
    manifest = EVAL_DIR / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"evaluation set not found at {EVAL_DIR} (set ASR_EVAL_DIR)")
    out = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if kind is None or row["kind"] == kind:
                out.append(
                    Clip(row["id"], EVAL_DIR / row["path"], row["text"], row["kind"], row["duration_s"], row)
                )
    return out


def normalize(text: str) -> str:
    return " ".join(str(_normalizer(text)).split())


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER over normalised texts (errors summed over all clips / reference words)."""
    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    return float(jiwer.wer([r for r, _ in pairs], [h or "<empty>" for _, h in pairs]))


def frame_rms(path: Path, frame_ms: int = 10) -> tuple[np.ndarray, float]:
    """RMS of each frame of a file (channels averaged) and the frame length in seconds."""
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    frame = round(frame_ms * rate / 1000)
    n = len(mono) // frame
    return np.sqrt((mono[: n * frame].reshape(n, frame) ** 2).mean(axis=1)), frame / rate


def speech_onsets_s(clip: Clip) -> list[float]:
    """Where the speech of each utterance of a long file starts: its first 10 ms frame within 20 dB
    of the utterance's loudest one. The manifest's ``start_s`` is where the utterance's recording
    starts, its own lead-in silence included (about 0.5 s in the LibriSpeech file)."""
    rms, frame_s = frame_rms(clip.path)
    onsets = []
    for utterance in clip.raw["segments"]:
        first, last = round(utterance["start_s"] / frame_s), round(utterance["end_s"] / frame_s)
        frames = rms[first:last]
        onsets.append((first + int(np.flatnonzero(frames > 0.1 * frames.max())[0])) * frame_s)
    return onsets


def first_word_errors_s(clip: Clip, words: list[dict[str, Any]], starts_s: list[float]) -> list[float]:
    """For each utterance of a long file (the manifest's ``segments``), how far the start of the
    hypothesis word aligned to its first reference word is from ``starts_s`` (one per utterance).

    Words are normalised one by one (keeping each one's start) and aligned to the normalised
    reference; utterances whose first word the hypothesis dropped are left out.
    """
    hyp_tokens: list[str] = []
    hyp_starts: list[float] = []
    for w in words:
        for token in normalize(w["word"]).split():
            hyp_tokens.append(token)
            hyp_starts.append(float(w["start"]))
    ref_tokens: list[str] = []
    firsts: list[tuple[int, float]] = []
    for utterance, start_s in zip(clip.raw["segments"], starts_s, strict=True):
        firsts.append((len(ref_tokens), start_s))
        ref_tokens += normalize(utterance["text"]).split()
    if not hyp_tokens:
        return []
    alignment = jiwer.process_words(" ".join(ref_tokens), " ".join(hyp_tokens)).alignments[0]
    hyp_index: dict[int, int] = {}
    for chunk in alignment:
        if chunk.type in ("equal", "substitute"):
            for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                hyp_index[chunk.ref_start_idx + k] = chunk.hyp_start_idx + k
    return [abs(hyp_starts[hyp_index[i]] - start_s) for i, start_s in firsts if i in hyp_index]
