"""A finished ``Transcription`` -> response bodies (json, text, verbose_json, diarized_json, srt, vtt);
the JSON pieces (segments, words, speakers, logprobs) that a stream's events share; speaker labels."""

from __future__ import annotations

import json
import string
from collections.abc import Iterable
from typing import Any

from app.config import SubtitleSettings
from app.engine import Segment, TokenLogprob, Word
from app.transcription.result import Transcription
from app.transcription.subtitles import subtitles

# The AI Refinery schema allows only Guest-1..Guest-3 and Unknown.
AIR_GUESTS = 3

CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "diarized_json": "application/json",
}


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


def openai_label(speaker: int) -> str:
    """OpenAI's diarized_json speaker names in order of first appearance: A, B, ..., Z, AA, AB, ..."""
    letters = string.ascii_uppercase
    return letters[speaker] if speaker < 26 else openai_label(speaker // 26 - 1) + letters[speaker % 26]


def air_label(speaker: int | None) -> str:
    """The same speaker's number while there is one in AI Refinery's labels, ``Unknown`` past them."""
    return f"Guest-{speaker + 1}" if speaker is not None and speaker < AIR_GUESTS else "Unknown"


def speaker_fields(speaker: int | None) -> dict[str, Any]:
    """``speaker`` as diarized_json names it (A, B, ...), ``speaker_id`` as AI Refinery does."""
    return {"speaker": None if speaker is None else openai_label(speaker), "speaker_id": air_label(speaker)}


def verbose_json(t: Transcription) -> dict[str, Any]:
    """One body valid for both the AI Refinery ``TranscriptionVerbose`` and OpenAI's."""
    segments: list[dict[str, Any]] = []
    words: list[dict[str, Any]] = []
    for i, spoken in enumerate(t.spoken):
        s = spoken.segment
        segments.append(segment_json(i, s))
        if t.diarized:
            segments[-1].update(speaker_fields(spoken.speaker))
        if t.words:
            if t.diarized:
                words.extend(
                    word_json(w, i) | speaker_fields(who)
                    for w, who in zip(s.words, spoken.word_speakers, strict=True)
                )
            else:
                words.extend(word_json(w, i) for w in s.words)
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
    if t.diarized:
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
    segments = [diarized_segment(i, s.segment, s.speaker) for i, s in enumerate(t.spoken)]
    return {
        "task": "transcribe",
        "duration": round(t.duration_s, 3),
        "text": t.text,
        "segments": segments,
        "usage": {"type": "duration", "seconds": round(t.duration_s, 3)},
        "success": True,
        "error": None,
    }
