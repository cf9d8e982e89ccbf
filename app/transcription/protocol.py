"""The transcription wire: every response body and stream event, typed, as ``/openapi.json`` shows them.

Bodies and events are pydantic models; an ``absent_if_none`` field is left out of the answer while
it is ``None`` (never sent as ``null``). The pieces a long answer repeats (a word, a segment, a
diarized segment, a token's logprob, and the events that carry one word or segment) are TypedDicts:
plain dicts at run time, so a one-hour verbose_json (10,000 words) builds no model per word, and
lists of them skip validation (their items are built from typed engine results). Everything goes
out through ``to_json``: ``json.dumps(..., ensure_ascii=False)``, its separators and float
formatting, as the answers always had.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NotRequired

from pydantic import BaseModel, Field, RootModel, SkipValidation
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from app.errors import Absent, absent_if_none


class Logprob(TypedDict):
    """OpenAI's token log-probability; ``bytes`` (UTF-8) rebuilds text whose characters span tokens."""

    token: str
    logprob: float
    bytes: list[int]


class SpeakerFields(TypedDict):
    """A diarized answer's speaker: diarized_json's name (a known speaker's name, else A, B, ...) and
    AI Refinery's (Guest-1..3, Unknown)."""

    speaker: str | None
    speaker_id: str


class VerboseWord(TypedDict):
    """A word of verbose_json; ``segment`` is its segment's ``id``. Speaker fields only when diarized."""

    word: str
    start: float
    end: float
    confidence: float
    segment: int
    speaker: NotRequired[str | None]
    speaker_id: NotRequired[str]
    channel: NotRequired[int]  # multichannel: the channel it was heard on (0-based)


class VerboseSegment(TypedDict):
    """A segment as both verbose_json schemas (OpenAI's, AI Refinery's) want it; speaker fields only
    when diarized."""

    id: int
    seek: float
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    speaker: NotRequired[str | None]
    speaker_id: NotRequired[str]
    channel: NotRequired[int]  # multichannel: the channel it was heard on (0-based)


class Usage(BaseModel):
    """What the request used: seconds of audio."""

    type: Literal["duration"]
    seconds: float


class TranscriptionJson(BaseModel):
    """``response_format=json`` (and ``text`` for the AI Refinery SDK): the seed's envelope."""

    text: str
    success: Literal[True]
    error: None
    confidence: float | None
    logprobs: SkipValidation[list[Logprob]] | Absent = absent_if_none('with include=["logprobs"]')


class TranscriptionVerbose(BaseModel):
    """``response_format=verbose_json``: both AI Refinery's ``TranscriptionVerbose`` and OpenAI's."""

    task: Literal["transcribe", "translate"]
    language: str = Field(description="BCP-47; a translation's is its text's, en-US")
    duration: float
    text: str
    segments: SkipValidation[list[VerboseSegment]]
    confidence: float | None
    success: Literal[True]
    error: None
    words: SkipValidation[list[VerboseWord]] | Absent = absent_if_none("with word timestamps")
    speakers: list[str] | Absent = absent_if_none("the speaker_ids in order of appearance, when diarized")
    source_language: str | Absent = absent_if_none("a translation's spoken language (BCP-47)")


class DiarizedSegment(TypedDict):
    """OpenAI's ``transcript.text.segment``: a diarized_json segment, and a diarized stream's event."""

    type: Literal["transcript.text.segment"]
    id: str
    start: float
    end: float
    text: str
    speaker: str
    channel: NotRequired[int]  # multichannel: the channel it was heard on (0-based)


class TranscriptionDiarized(BaseModel):
    """``response_format=diarized_json``: OpenAI's ``TranscriptionDiarized``."""

    task: Literal["transcribe"]
    duration: float
    text: str
    segments: SkipValidation[list[DiarizedSegment]]
    usage: Usage
    success: Literal[True]
    error: None


class TextDelta(BaseModel):
    """A chunk's new text: ``delta`` (OpenAI) and ``text`` (AI Refinery) agree."""

    type: Literal["transcript.text.delta"]
    delta: str
    text: str
    id: str = Field(description="the chunk's index")
    offset: float = Field(description="the chunk's start (s)")
    duration: float = Field(description="the chunk's length (s)")
    logprobs: SkipValidation[list[Logprob] | None]


class SpeakerTextDelta(TextDelta):
    """A diarized stream's delta once its speakers are known: whoever speaks most over the chunk."""

    speaker: str | None
    speaker_id: str


class WordEvent(VerboseWord):
    """``transcript.word``: a word as verbose_json lists it (speaker fields only when diarized)."""

    type: Literal["transcript.word"]


class SegmentEvent(TypedDict):
    """``transcript.segment``: a segment as verbose_json lists it."""

    type: Literal["transcript.segment"]
    segment: VerboseSegment


class TextDone(BaseModel):
    """The last event of a stream that succeeded (then ``data: [DONE]``)."""

    type: Literal["transcript.text.done"]
    text: str
    confidence: float | None
    logprobs: SkipValidation[list[Logprob] | None]
    usage: Usage


class StreamErrorDetail(BaseModel):
    message: str
    type: Literal["server_error"]
    code: str


class StreamError(BaseModel):
    """Ends a stream that failed after its 200 was sent (openai-python raises on it); no [DONE]."""

    type: Literal["error"]
    error: StreamErrorDetail


TranscriptionBody = TranscriptionJson | TranscriptionVerbose | TranscriptionDiarized
StreamEvent = (
    TextDelta | SpeakerTextDelta | WordEvent | SegmentEvent | DiarizedSegment | TextDone | StreamError
)


class TranscriptionStreamEvent(RootModel[StreamEvent]):
    """One ``data:`` line of a stream (``stream=true``): JSON, one of these events; ``[DONE]`` last.
    (Named for ``/openapi.json``; the events themselves are sent as they are.)"""


def to_json(wire: BaseModel | StreamEvent) -> str:
    """A body or event as it goes on the wire."""
    return json.dumps(wire, ensure_ascii=False, default=_fields)


def _fields(model: object) -> dict[str, Any]:
    """``json.dumps``'s fallback for a model: its fields in order, less those its ``exclude_if``
    leaves out. Nested models come back here and the TypedDict pieces are plain dicts already, so a
    long answer's words are encoded once, not copied first (as ``model_dump`` would)."""
    if not isinstance(model, BaseModel):
        raise TypeError(f"{type(model).__name__} is not a wire type")
    fields = type(model).model_fields
    return {
        name: value
        for name, value in model
        if (exclude_if := fields[name].exclude_if) is None or not exclude_if(value)
    }
