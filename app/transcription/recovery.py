"""Speech a window's decode left out: stretches of a VAD chunk that no decoded segment covers.

Whisper sometimes skips a whole turn of a conversation, typically a quieter voice after a louder
one, with no sign in its scores. A chunk holds no pause of ``silence_duration_ms`` (500 ms) or
more, so a stretch of a chunk that long without text is speech the decode dropped. Each such
stretch is decoded again on its own, where Whisper hears it (see bench/README.md#missed-speech).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable, Sequence

from app.audio.chunking import Chunk
from app.audio.feed import ChunkFeed
from app.audio.pcm import SAMPLE_RATE
from app.engine import DecodeOptions, DecodeResult, Engine, Segment
from app.engine.quality import SURE_SPEECH
from app.transcription.deadline import within

MISSED_S = 2.0  # a stretch of a chunk this long with no text is decoded again
_MARGIN = int(0.2 * SAMPLE_RATE)  # audio kept either side of a missed stretch


async def recovered(
    engine: Engine,
    feed: ChunkFeed,
    window: Sequence[Chunk],
    transcript: DecodeResult,
    options: DecodeOptions,
    prompt: Callable[[str], str | None],
    deadline: float | None,
) -> DecodeResult:
    """The window's transcript with the speech its decode left out decoded again, each stretch on
    its own, prompted (``prompt``) with the window's text before it."""
    stretches = missed_stretches(transcript, window)
    if not stretches:
        return transcript
    language = options.language or transcript.language
    futures = []
    for start, end in stretches:
        ends = start - window[0].start
        before = "".join(s.text for s in transcript.segments if s.end_s * SAMPLE_RATE <= ends).strip()
        redo = dataclasses.replace(options, language=language, give_up_below=None, prompt=prompt(before))
        futures.append(engine.submit(feed.window(start, end), redo))
    try:
        redone = [await within(deadline, asyncio.wrap_future(f)) for f in futures]
    finally:
        for f in futures:
            f.cancel()
    return with_recovered(transcript, window[0].start, stretches, redone)


def missed_stretches(transcript: DecodeResult, window: Sequence[Chunk]) -> list[tuple[int, int]]:
    """The stretches (samples, on the upload's timeline) of the window's chunks, at least
    ``MISSED_S`` long, that none of the transcript's segments overlaps."""
    origin = window[0].start
    covered = sorted(
        (origin + round(s.start_s * SAMPLE_RATE), origin + round(s.end_s * SAMPLE_RATE))
        for s in transcript.segments
    )
    stretches = []
    for chunk in window:
        at = chunk.start if chunk.speech_start is None else chunk.speech_start
        for start, end in [*covered, (chunk.end, chunk.end)]:
            if end <= at:
                continue
            if min(start, chunk.end) - at >= MISSED_S * SAMPLE_RATE:
                stretches.append((max(at - _MARGIN, chunk.start), min(start + _MARGIN, chunk.end)))
            at = max(at, end)
            if at >= chunk.end:
                break
    return stretches


def with_recovered(
    transcript: DecodeResult,
    window_start: int,
    stretches: Sequence[tuple[int, int]],
    redone: Sequence[DecodeResult],
) -> DecodeResult:
    """The transcript with each re-decoded stretch's sure segments put in place, in time order.

    A segment that repeats the text next to it is left out: the alignment had put that sentence
    late, over a pause, and the stretch it left bare was its own."""
    added = [
        s.shifted((start - window_start) / SAMPLE_RATE)
        for (start, _), result in zip(stretches, redone, strict=True)
        for s in result.segments
        if s.no_speech_prob <= SURE_SPEECH  # a VAD chunk of noise decoded alone invites inventions
    ]
    added = [s for s in added if not _repeats_a_neighbour(s, transcript.segments)]
    if not added:
        return transcript
    segments = sorted([*transcript.segments, *added], key=lambda s: s.start_s)
    return dataclasses.replace(transcript, segments=tuple(segments))


def _repeats_a_neighbour(segment: Segment, segments: Sequence[Segment]) -> bool:
    """Whether the segment's words are among those of the segment just before or after it."""
    said = " ".join(_words(segment.text))
    before = [s for s in segments if s.start_s < segment.start_s][-1:]
    after = [s for s in segments if s.start_s >= segment.start_s][:1]
    return bool(said) and any(f" {said} " in f" {' '.join(_words(s.text))} " for s in before + after)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())
