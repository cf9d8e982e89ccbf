"""Transcript -> response bodies (json, text, verbose_json, diarized_json, srt, vtt); the JSON pieces
(segments, words, speakers, logprobs) that a stream's events (``app.stream_events``) share."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.config import SubtitleSettings
from app.diarization.attribution import air_label, by_speaker, openai_label, word_speakers
from app.diarization.turns import Diarization
from app.engine import Segment, TokenLogprob, Word
from app.engine.quality import token_confidence
from app.pipeline import ChunkResult
from app.subtitles import subtitles

CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "diarized_json": "application/json",
}


@dataclass(frozen=True, slots=True)
class Transcription:
    """The whole request's result, assembled from its chunks."""

    results: tuple[ChunkResult, ...]
    duration_s: float
    language: str  # BCP-47, e.g. "en-US"
    logprobs: bool = False  # the request's include has "logprobs"
    words: bool = False  # its timestamp_granularities has "word"
    task: str = "transcribe"  # or "translate": English text, ``language`` is what was spoken
    speakers: Diarization | None = None  # when diarization was asked for

    def speaker_segments(self) -> list[tuple[Segment, int | None]]:
        """Segments (cut where the speaker changes when diarized) and their speakers."""
        if self.speakers is None:
            return [(s, None) for s in self.segments]
        return by_speaker(self.segments, self.speakers)

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


def render_body(t: Transcription, response_format: str, subtitle_layout: SubtitleSettings) -> str:
    """The body of a non-streaming answer in the requested format."""
    if response_format == "text":
        return t.text + "\n" if t.text else ""
    if response_format == "verbose_json":
        return json.dumps(verbose_json(t), ensure_ascii=False)
    if response_format == "diarized_json":
        return json.dumps(diarized_json(t), ensure_ascii=False)
    if response_format in {"srt", "vtt"}:
        language = t.language.split("-")[0] if t.task == "transcribe" else "en"
        return subtitles(t.segments, subtitle_layout, vtt=response_format == "vtt", language=language)
    confidence = t.confidence
    body: dict[str, Any] = {
        "text": t.text,
        "success": True,
        "error": None,
        "confidence": None if confidence is None else round(confidence, 4),
    }
    if t.logprobs:
        body["logprobs"] = logprobs_json(lp for s in t.segments for lp in s.logprobs)
    return json.dumps(body, ensure_ascii=False)


def logprobs_json(logprobs: Iterable[TokenLogprob]) -> list[dict[str, Any]]:
    """OpenAI's token log-probability objects; ``bytes`` (UTF-8) lets a client rebuild text whose
    characters span several tokens."""
    return [{"token": lp.token, "logprob": lp.logprob, "bytes": list(lp.token.encode())} for lp in logprobs]


def segment_json(segment_id: int, s: Segment) -> dict[str, Any]:
    """A segment as both verbose_json schemas (and the AI Refinery segment event) want it."""
    return {
        "id": segment_id,
        "seek": round(s.start_s, 3),
        "start": s.start_s,
        "end": s.end_s,
        "text": s.text,
        "tokens": list(s.tokens),
        "temperature": s.temperature,
        "avg_logprob": s.avg_logprob,
        "compression_ratio": max(s.compression_ratio, 1e-6),  # the AI Refinery schema wants > 0
        "no_speech_prob": s.no_speech_prob,
    }


def word_json(w: Word, segment_id: int) -> dict[str, Any]:
    return {
        "word": w.word.strip(),
        "start": w.start_s,
        "end": w.end_s,
        "confidence": round(w.probability, 4),
        "segment": segment_id,
    }


def speaker_fields(speaker: int | None) -> dict[str, Any]:
    """``speaker`` as diarized_json names it (A, B, ...), ``speaker_id`` as AI Refinery does."""
    return {"speaker": None if speaker is None else openai_label(speaker), "speaker_id": air_label(speaker)}


def verbose_json(t: Transcription) -> dict[str, Any]:
    """One body valid for both the AI Refinery ``TranscriptionVerbose`` and OpenAI's."""
    segments: list[dict[str, Any]] = []
    words: list[dict[str, Any]] = []
    for i, (s, speaker) in enumerate(t.speaker_segments()):
        segments.append(segment_json(i, s))
        if t.speakers is not None:
            segments[-1].update(speaker_fields(speaker))
        if t.words:
            words.extend(word_json(w, i) for w in s.words)
            if t.speakers is not None:
                for w, who in zip(
                    words[len(words) - len(s.words) :], word_speakers(s.words, t.speakers), strict=True
                ):
                    w.update(speaker_fields(who))
    confidence = t.confidence
    body: dict[str, Any] = {
        "task": t.task,
        # A translation's language is its text's, English (as OpenAI's); the speech's is beside it.
        "language": t.language if t.task == "transcribe" else "en-US",
        "duration": round(t.duration_s, 3),
        "text": t.text,
        "segments": segments,
        "confidence": None if confidence is None else round(confidence, 4),
        "success": True,
        "error": None,
    }
    if t.words:
        body["words"] = words
    if t.speakers is not None:
        body["speakers"] = list(dict.fromkeys(s["speaker_id"] for s in segments))
    if t.task == "translate":
        body["source_language"] = t.language
    return body


def diarized_segment(i: int, s: Segment, speaker: int | None) -> dict[str, Any]:
    """OpenAI's ``transcript.text.segment`` (a diarized_json segment, and a stream event)."""
    return {
        "type": "transcript.text.segment",
        "id": f"seg_{i}",
        "start": s.start_s,
        "end": s.end_s,
        "text": s.text.strip(),
        "speaker": openai_label(speaker or 0),
    }


def diarized_json(t: Transcription) -> dict[str, Any]:
    """OpenAI's ``TranscriptionDiarized``: the text and its speaker segments."""
    segments = [diarized_segment(i, s, who) for i, (s, who) in enumerate(t.speaker_segments())]
    return {
        "task": "transcribe",
        "duration": round(t.duration_s, 3),
        "text": t.text,
        "segments": segments,
        "usage": {"type": "duration", "seconds": round(t.duration_s, 3)},
        "success": True,
        "error": None,
    }
