"""Transcript -> response bodies (json, text, verbose_json, srt, vtt) and SSE events."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from app.engine import Segment, token_confidence
from app.pipeline import ChunkResult

CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Transcription:
    """The whole request's result, assembled from its chunks."""

    results: tuple[ChunkResult, ...]
    duration_s: float
    language: str  # BCP-47, e.g. "en-US"

    @property
    def segments(self) -> list[Segment]:
        return [s for r in self.results for s in r.segments]

    @property
    def text(self) -> str:
        return join_texts(r.text for r in self.results)

    @property
    def confidence(self) -> float | None:
        return token_confidence(self.segments)


def join_texts(texts: Iterable[str]) -> str:
    """Chunk texts joined by single spaces: exactly what the stream's deltas add up to."""
    return " ".join(t for t in texts if t)


def render_body(t: Transcription, response_format: str) -> str:
    """The body of a non-streaming answer in the requested format."""
    if response_format == "text":
        return t.text + "\n" if t.text else ""
    if response_format == "verbose_json":
        return json.dumps(verbose_json(t), ensure_ascii=False)
    if response_format in {"srt", "vtt"}:
        return subtitles(t.segments, vtt=response_format == "vtt")
    confidence = t.confidence
    return json.dumps(
        {
            "text": t.text,
            "success": True,
            "error": None,
            "confidence": None if confidence is None else round(confidence, 4),
        },
        ensure_ascii=False,
    )


def verbose_json(t: Transcription) -> dict[str, Any]:
    """One body valid for both the AI Refinery ``TranscriptionVerbose`` and OpenAI's."""
    segments: list[dict[str, Any]] = []
    words: list[dict[str, Any]] = []
    for i, s in enumerate(t.segments):
        segments.append(
            {
                "id": i,
                "seek": round(s.start_s, 3),
                "start": s.start_s,
                "end": s.end_s,
                "text": s.text,
                "tokens": list(s.tokens),
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": max(s.compression_ratio, 1e-6),
                "no_speech_prob": s.no_speech_prob,
            }
        )
        words.extend(
            {
                "word": w.word.strip(),
                "start": w.start_s,
                "end": w.end_s,
                "confidence": round(w.probability, 4),
                "segment": i,
            }
            for w in s.words
        )
    confidence = t.confidence
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": t.language,
        "duration": round(t.duration_s, 3),
        "text": t.text,
        "segments": segments,
        "confidence": None if confidence is None else round(confidence, 4),
        "success": True,
        "error": None,
    }
    if words:
        body["words"] = words
    return body


def subtitles(segments: Sequence[Segment], *, vtt: bool) -> str:
    lines = ["WEBVTT", ""] if vtt else []
    for i, s in enumerate((s for s in segments if s.text.strip()), start=1):
        if not vtt:
            lines.append(str(i))
        lines.append(f"{_clock(s.start_s, vtt)} --> {_clock(s.end_s, vtt)}")
        lines.extend([s.text.strip(), ""])
    return "\n".join(lines) + ("\n" if lines and lines[-1] != "" else "")


def _clock(seconds: float, vtt: bool) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{'.' if vtt else ','}{ms:03d}"


# --- streaming -------------------------------------------------------------------------------


def delta_event(result: ChunkResult, text: str) -> dict[str, Any]:
    """A chunk's new text; ``delta`` (OpenAI, seed docs) and ``text`` (AI Refinery parser) agree."""
    return {
        "type": "transcript.text.delta",
        "delta": text,
        "text": text,
        "id": str(result.index),
        "offset": round(result.chunk.start_s, 3),
        "duration": round(result.chunk.duration_s, 3),
        "logprobs": None,
    }


def done_event(t: Transcription) -> dict[str, Any]:
    confidence = t.confidence
    return {
        "type": "transcript.text.done",
        "text": t.text,
        "confidence": None if confidence is None else round(confidence, 4),
        "logprobs": None,
        "usage": {"type": "duration", "seconds": round(t.duration_s, 3)},
    }


def error_event(message: str, code: str) -> dict[str, Any]:
    """Ends a stream that failed after its 200 was sent (openai-python raises on it)."""
    return {"type": "error", "error": {"message": message, "type": "server_error", "code": code}}
