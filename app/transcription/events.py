"""A streamed transcription's SSE events: each chunk's delta (and word / segment events), a
diarized stream's speaker events, the done event, and the error that ends a failed stream."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Any

from app.engine import Segment, TokenLogprob, Word
from app.transcription.render import (
    diarized_segment,
    logprobs_json,
    segment_json,
    speaker_fields,
    word_json,
)
from app.transcription.result import ChunkResult, Transcription


def delta_event(
    result: ChunkResult, text: str, logprobs: Sequence[TokenLogprob] | None = None
) -> dict[str, Any]:
    """A chunk's new text; ``delta`` (OpenAI, seed docs) and ``text`` (AI Refinery parser) agree."""
    return {
        "type": "transcript.text.delta",
        "delta": text,
        "text": text,
        "id": str(result.index),
        "offset": round(result.chunk.start_s, 3),
        "duration": round(result.chunk.duration_s, 3),
        "logprobs": None if logprobs is None else logprobs_json(logprobs),
    }


def done_event(t: Transcription) -> dict[str, Any]:
    confidence = t.confidence
    return {
        "type": "transcript.text.done",
        "text": t.text,
        "confidence": None if confidence is None else round(confidence, 4),
        "logprobs": logprobs_json(lp for s in t.segments for lp in s.logprobs) if t.logprobs else None,
        "usage": {"type": "duration", "seconds": round(t.duration_s, 3)},
    }


def tokens_by_word(segment: Segment) -> list[tuple[TokenLogprob, ...]]:
    """A segment's token logprobs split over its words (by character position in their text).

    Whisper's words are runs of whole tokens, so this is exact; tokens past the last word (text
    that does not line up) go to the last word, so none is lost.
    """
    if not segment.words:
        return []
    ends = list(itertools.accumulate(len(w.word) for w in segment.words))
    groups: list[list[TokenLogprob]] = [[] for _ in segment.words]
    position = 0
    for lp in segment.logprobs:
        groups[min(bisect.bisect_right(ends, position), len(groups) - 1)].append(lp)
        position += len(lp.token)
    return [tuple(g) for g in groups]


class StreamEvents:
    """A stream's per-chunk events: the delta, then ``transcript.word`` / ``transcript.segment``.

    Segments are numbered across the whole stream in the order verbose_json numbers them; a word
    is told apart by its segment, and a delta carries the logprobs of exactly its own words (a
    segment can start in one chunk and end in the next). A chunk's segments always arrive with or
    before its words' later chunks, so the maps below are filled in time.
    """

    def __init__(self, *, words: bool, segments: bool, logprobs: bool) -> None:
        self._words = words
        self._segments = segments
        self._logprobs = logprobs
        self._segment_of: dict[Word, int] = {}
        self._tokens_of: dict[Word, tuple[TokenLogprob, ...]] = {}
        self._next_segment = 0
        self._any_text = False

    def chunk(self, result: ChunkResult) -> list[dict[str, Any]]:
        """The events for one chunk's result (none for a chunk without text or segments)."""
        numbered: list[tuple[int, Segment]] = []
        for segment in result.segments:
            numbered.append((self._next_segment, segment))
            for w, tokens in zip(segment.words, tokens_by_word(segment), strict=True):
                self._segment_of[w] = self._next_segment
                self._tokens_of[w] = tokens
            self._next_segment += 1
        events: list[dict[str, Any]] = []
        if result.text:
            logprobs: list[TokenLogprob] | None = None
            if self._logprobs:
                logprobs = (
                    [lp for w in result.words for lp in self._tokens_of.get(w, ())]
                    if result.words
                    else [lp for s in result.segments for lp in s.logprobs]
                )
            prefix = " " if self._any_text else ""
            self._any_text = True
            events.append(delta_event(result, prefix + result.text, logprobs))
        if self._words:
            events.extend(
                {"type": "transcript.word", **word_json(w, self._segment_of.get(w, 0))} for w in result.words
            )
        if self._segments:
            events.extend({"type": "transcript.segment", "segment": segment_json(i, s)} for i, s in numbered)
        return events


def speaker_events(t: Transcription, *, words: bool, segments: bool, diarized: bool) -> list[dict[str, Any]]:
    """A diarized stream's events once its speakers are settled (before done): OpenAI's
    ``transcript.text.segment`` for diarized_json, else the word / segment events asked for."""
    events: list[dict[str, Any]] = []
    for i, spoken in enumerate(t.spoken):
        s, speaker = spoken.segment, spoken.speaker
        if diarized:
            events.append(diarized_segment(i, s, speaker))
            continue
        if words:
            for w, who in zip(s.words, spoken.word_speakers, strict=True):
                events.append({"type": "transcript.word", **word_json(w, i), **speaker_fields(who)})
        if segments:
            events.append(
                {"type": "transcript.segment", "segment": {**segment_json(i, s), **speaker_fields(speaker)}}
            )
    return events


def error_event(message: str, code: str) -> dict[str, Any]:
    """Ends a stream that failed after its 200 was sent (openai-python raises on it)."""
    return {"type": "error", "error": {"message": message, "type": "server_error", "code": code}}
