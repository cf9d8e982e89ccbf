"""A streamed transcription's SSE events: each chunk's delta (and word / segment events), a
diarized stream's speaker events, the done event, and the error that ends a failed stream."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Literal

from app.diarization.turns import Diarization
from app.engine import Segment, TokenLogprob, Word
from app.transcription.protocol import (
    SegmentEvent,
    SpeakerTextDelta,
    StreamError,
    StreamErrorDetail,
    StreamEvent,
    TextDelta,
    TextDone,
    WordEvent,
)
from app.transcription.render import (
    diarized_segment,
    logprobs_json,
    rounded,
    segment_json,
    speaker_fields,
    usage,
    with_channel,
    word_json,
)
from app.transcription.result import ChunkResult, Transcription, chunk_speaker


def delta_event(
    result: ChunkResult,
    text: str,
    logprobs: Sequence[TokenLogprob] | None = None,
    speakers: Diarization | None = None,
) -> TextDelta:
    """A chunk's new text; ``delta`` (OpenAI, seed docs) and ``text`` (AI Refinery parser) agree.
    With ``speakers`` (a diarized stream's, once known) it names whoever speaks most over the chunk."""
    delta = TextDelta(
        type="transcript.text.delta",
        delta=text,
        text=text,
        id=str(result.index),
        offset=round(result.chunk.start_s, 3),
        duration=round(result.chunk.duration_s, 3),
        logprobs=None if logprobs is None else logprobs_json(logprobs),
    )
    if speakers is None:
        return delta
    return SpeakerTextDelta(**dict(delta), **speaker_fields(chunk_speaker(speakers, result), speakers.names))


def done_event(t: Transcription) -> TextDone:
    return TextDone(
        type="transcript.text.done",
        text=t.text,
        confidence=rounded(t.confidence),
        logprobs=logprobs_json(lp for s in t.segments for lp in s.logprobs) if t.logprobs else None,
        usage=usage(t.duration_s),
    )


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

    def chunk(self, result: ChunkResult, speakers: Diarization | None = None) -> list[StreamEvent]:
        """The events for one chunk's result (none for a chunk without text or segments); with
        ``speakers`` its delta names the chunk's speaker."""
        numbered: list[tuple[int, Segment]] = []
        for segment in result.segments:
            numbered.append((self._next_segment, segment))
            for w, tokens in zip(segment.words, tokens_by_word(segment), strict=True):
                self._segment_of[w] = self._next_segment
                self._tokens_of[w] = tokens
            self._next_segment += 1
        events: list[StreamEvent] = []
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
            events.append(delta_event(result, prefix + result.text, logprobs, speakers))
        if self._words:
            events.extend(word_event(w, self._segment_of.get(w, 0)) for w in result.words)
        if self._segments:
            events.extend(segment_event(i, s) for i, s in numbered)
        return events


def word_event(
    w: Word, segment_id: int, speaker: int | Literal[False] | None = False, names: Sequence[str | None] = ()
) -> WordEvent:
    """``transcript.word``; with ``speaker`` (None: unknown) it carries the speaker fields."""
    event: WordEvent = {"type": "transcript.word", **word_json(w, segment_id)}
    return event if speaker is False else {**event, **speaker_fields(speaker, names)}


def segment_event(
    i: int, s: Segment, speaker: int | Literal[False] | None = False, names: Sequence[str | None] = ()
) -> SegmentEvent:
    """``transcript.segment``; with ``speaker`` (None: unknown) it carries the speaker fields."""
    segment = segment_json(i, s)
    return {
        "type": "transcript.segment",
        "segment": segment if speaker is False else {**segment, **speaker_fields(speaker, names)},
    }


def speaker_events(t: Transcription, *, words: bool, segments: bool, diarized: bool) -> list[StreamEvent]:
    """A diarized stream's events once its speakers are settled (before done): OpenAI's
    ``transcript.text.segment`` for diarized_json, else the word / segment events asked for."""
    events: list[StreamEvent] = []
    names = t.speakers.names if t.speakers is not None else ()
    for i, spoken in enumerate(t.spoken):
        s, speaker = spoken.segment, spoken.speaker
        if diarized:
            events.append(with_channel(t, diarized_segment(i, s, speaker, names), speaker))
            continue
        if words:
            events.extend(
                with_channel(t, word_event(w, i, who, names), who)
                for w, who in zip(s.words, spoken.word_speakers, strict=True)
            )
        if segments:
            event = segment_event(i, s, speaker, names)
            with_channel(t, event["segment"], speaker)
            events.append(event)
    return events


def error_event(message: str, code: str) -> StreamError:
    """Ends a stream that failed after its 200 was sent (openai-python raises on it)."""
    return StreamError(type="error", error=StreamErrorDetail(message=message, type="server_error", code=code))
