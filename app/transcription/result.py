"""A request's result: each chunk's transcript, then the whole answer with its speakers attributed.

Attribution (segments cut where the speaker changes, each word's speaker) happens here, when the
result is assembled, so the renderers only format a finished result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from app.audio.chunking import Chunk
from app.diarization.attribution import split_segment, word_speakers
from app.diarization.turns import Diarization
from app.engine import Segment, Word
from app.engine.quality import token_confidence
from app.models.selection import Task


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """One chunk's transcript; segment and word times are on the upload's timeline."""

    index: int
    chunk: Chunk
    segments: tuple[Segment, ...]  # the segments that start in this chunk
    words: tuple[Word, ...]  # the words spoken in this chunk
    language: str
    channel: int | None = None  # multichannel: the channel it was heard on (its speaker)

    @property
    def text(self) -> str:
        if self.words:
            return "".join(w.word for w in self.words).strip()
        return "".join(s.text for s in self.segments).strip()


@dataclass(frozen=True, slots=True)
class SpokenSegment:
    """A segment of the answer, with its speaker and its words' speakers when diarized."""

    segment: Segment
    speaker: int | None = None
    word_speakers: tuple[int | None, ...] = ()  # one per word of ``segment`` when diarized


@dataclass(frozen=True, slots=True)
class Transcription:
    """The whole request's result, assembled from its chunks."""

    results: tuple[ChunkResult, ...]
    duration_s: float
    language: str  # BCP-47, e.g. "en-US"
    logprobs: bool = False  # the request's include has "logprobs"
    words: bool = False  # its timestamp_granularities has "word"
    task: Task = "transcribe"  # or "translate": English text, ``language`` is what was spoken
    speakers: Diarization | None = None  # when diarization was asked for (multichannel: the channels)
    channels: int = 0  # multichannel: how many; each result's speaker is its channel
    spoken: tuple[SpokenSegment, ...] = field(init=False)  # the segments as answered

    def __post_init__(self) -> None:
        if self.channels:
            spoken = tuple(
                SpokenSegment(s, r.channel, (r.channel,) * len(s.words))
                for r in self.results
                for s in r.segments
            )
        else:
            spoken = attribute(self.segments, self.speakers)
        object.__setattr__(self, "spoken", spoken)

    @property
    def diarized(self) -> bool:
        return self.speakers is not None

    @property
    def segments(self) -> list[Segment]:
        return [s for r in self.results for s in r.segments]

    @property
    def text(self) -> str:
        return join_texts(r.text for r in self.results)

    @property
    def confidence(self) -> float | None:
        return token_confidence(self.segments)


def attribute(segments: Iterable[Segment], speakers: Diarization | None) -> tuple[SpokenSegment, ...]:
    """The segments as answered: unchanged without speakers, else cut into runs of one speaker's
    words, each with its speaker and its words' speakers."""
    if speakers is None:
        return tuple(SpokenSegment(s) for s in segments)
    return tuple(
        SpokenSegment(piece, who, tuple(word_speakers(piece.words, speakers)))
        for s in segments
        for piece, who in split_segment(s, speakers)
    )


def chunk_speaker(speakers: Diarization, result: ChunkResult) -> int | None:
    """Whoever speaks most over a chunk's words (a stream's delta names them)."""
    if result.channel is not None:
        return result.channel
    start = result.words[0].start_s if result.words else result.chunk.speech_start_s
    end = result.words[-1].end_s if result.words else result.chunk.start_s + result.chunk.duration_s
    return speakers.speaker_at(start, end)


def join_texts(texts: Iterable[str]) -> str:
    """Chunk texts joined by single spaces: exactly what the stream's deltas add up to."""
    return " ".join(t for t in texts if t)
