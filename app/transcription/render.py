"""A finished ``Transcription`` -> response bodies (json, text, verbose_json, diarized_json, srt, vtt);
the JSON pieces (segments, words, speakers, logprobs) that a stream's events share; speaker labels."""

from __future__ import annotations

import itertools
import string
from collections.abc import Iterable, Sequence
from typing import TypeVar

from app.config import SubtitleSettings
from app.engine import Segment, TokenLogprob, Word
from app.transcription.protocol import (
    DetectedLanguage,
    DiarizedSegment,
    Logprob,
    SpeakerFields,
    TranscriptionDiarized,
    TranscriptionJson,
    TranscriptionVerbose,
    Usage,
    VerboseSegment,
    VerboseWord,
    WordEvent,
    to_json,
)
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
        return to_json(verbose_json(t))
    if response_format == "diarized_json":
        return to_json(diarized_json(t))
    if response_format in {"srt", "vtt"}:
        language = t.language.split("-")[0] if t.task == "transcribe" else "en"
        vtt = response_format == "vtt"
        if t.speakers is not None:  # each cue says who speaks: a voice span (vtt), a prefix (srt)
            names = t.speakers.names
            labels = [None if s.speaker is None else speaker_label(s.speaker, names) for s in t.spoken]
            segments = [s.segment for s in t.spoken]
            return subtitles(segments, subtitle_layout, vtt=vtt, language=language, speakers=labels)
        return subtitles(t.segments, subtitle_layout, vtt=vtt, language=language)
    return to_json(
        TranscriptionJson(
            text=t.text,
            success=True,
            error=None,
            confidence=rounded(t.confidence),
            logprobs=logprobs_json(lp for s in t.segments for lp in s.logprobs) if t.logprobs else None,
            usage=usage(t.duration_s),
            languages=None
            if t.detected_languages is None
            else [DetectedLanguage(code=code) for code in t.detected_languages],
        )
    )


def rounded(confidence: float | None) -> float | None:
    return None if confidence is None else round(confidence, 4)


def logprobs_json(logprobs: Iterable[TokenLogprob]) -> list[Logprob]:
    """OpenAI's token log-probability objects; ``bytes`` (UTF-8) lets a client rebuild text whose
    characters span several tokens."""
    return [{"token": lp.token, "logprob": lp.logprob, "bytes": list(lp.token.encode())} for lp in logprobs]


def segment_json(segment_id: int, s: Segment) -> VerboseSegment:
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


def word_json(w: Word, segment_id: int) -> VerboseWord:
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


def speaker_label(speaker: int, names: Sequence[str | None] = ()) -> str:
    """A speaker as diarized_json, verbose_json's ``speaker``, streams and subtitles name them: the
    known name (``names[speaker]``) where there is one, else a letter (A, B, ...) counted among the
    speakers without a name, in order of first appearance, skipping letters a name already is."""
    name = names[speaker] if speaker < len(names) else None
    if name:
        return name
    taken = set(names)
    free = (label for label in map(openai_label, itertools.count()) if label not in taken)
    return next(itertools.islice(free, speaker - sum(1 for n in names[:speaker] if n), None))


def air_label(speaker: int | None) -> str:
    """The same speaker's number while there is one in AI Refinery's labels, ``Unknown`` past them."""
    return f"Guest-{speaker + 1}" if speaker is not None and speaker < AIR_GUESTS else "Unknown"


def speaker_fields(speaker: int | None, names: Sequence[str | None] = ()) -> SpeakerFields:
    """``speaker`` as diarized_json names it (a known name, else A, B, ...), ``speaker_id`` as AI
    Refinery does (Guest-n)."""
    label = None if speaker is None else speaker_label(speaker, names)
    return {"speaker": label, "speaker_id": air_label(speaker)}


def verbose_json(t: Transcription) -> TranscriptionVerbose:
    """One body valid for both the AI Refinery ``TranscriptionVerbose`` and OpenAI's."""
    segments: list[VerboseSegment] = []
    words: list[VerboseWord] = []
    names = t.speakers.names if t.speakers is not None else ()
    for i, spoken in enumerate(t.spoken):
        s = spoken.segment
        segment = segment_json(i, s)
        segments.append({**segment, **speaker_fields(spoken.speaker, names)} if t.diarized else segment)
        if t.words:
            if t.diarized:
                words.extend(
                    {**word_json(w, i), **speaker_fields(who, names)}
                    for w, who in zip(s.words, spoken.word_speakers, strict=True)
                )
            else:
                words.extend(word_json(w, i) for w in s.words)
    if t.channels:  # (a pass of its own: the usual answer pays nothing for it)
        for item, spoken in zip(segments, t.spoken, strict=True):
            with_channel(t, item, spoken.speaker)
        for word, who in zip(words, (who for s in t.spoken for who in s.word_speakers), strict=False):
            with_channel(t, word, who)
    return TranscriptionVerbose(
        task=t.task,
        # A translation's language is its text's, English (as OpenAI's); the speech's is beside it.
        language=t.language if t.task == "transcribe" else "en-US",
        duration=round(t.duration_s, 3),
        text=t.text,
        segments=segments,
        confidence=rounded(t.confidence),
        success=True,
        error=None,
        words=words if t.words else None,
        speakers=list(dict.fromkeys(s["speaker_id"] for s in segments if "speaker_id" in s))
        if t.diarized
        else None,
        source_language=t.language if t.task == "translate" else None,
        usage=usage(t.duration_s),
    )


def diarized_segment(
    i: int, s: Segment, speaker: int | None, names: Sequence[str | None] = ()
) -> DiarizedSegment:
    """OpenAI's ``transcript.text.segment`` (a diarized_json segment, and a stream event)."""
    return {
        "type": "transcript.text.segment",
        "id": f"seg_{i}",
        "start": s.start_s,
        "end": s.end_s,
        "text": s.text.strip(),
        "speaker": speaker_label(speaker or 0, names),
    }


Item = TypeVar("Item", VerboseSegment, VerboseWord, WordEvent, DiarizedSegment)


def with_channel(t: Transcription, item: Item, speaker: int | None) -> Item:
    """A multichannel answer's segment or word gets its ``channel``: the channel is the speaker."""
    if t.channels and speaker is not None:
        item["channel"] = speaker
    return item


def usage(duration_s: float) -> Usage:
    return Usage(type="duration", seconds=round(duration_s, 3))


def diarized_json(t: Transcription) -> TranscriptionDiarized:
    """OpenAI's ``TranscriptionDiarized``: the text and its speaker segments."""
    names = t.speakers.names if t.speakers is not None else ()
    return TranscriptionDiarized(
        task="transcribe",
        duration=round(t.duration_s, 3),
        text=t.text,
        segments=[
            with_channel(t, diarized_segment(i, s.segment, s.speaker, names), s.speaker)
            for i, s in enumerate(t.spoken)
        ],
        usage=usage(t.duration_s),
        success=True,
        error=None,
    )
