"""The shared evaluation set (``../shared/eval``, read in place) and WER scoring."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

EVAL_DIR = Path(os.environ.get("ASR_EVAL_DIR", Path(__file__).resolve().parents[2] / "shared" / "eval"))

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
