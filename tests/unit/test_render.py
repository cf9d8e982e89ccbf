"""Bodies and stream events from hand-made results: token logprobs, word/segment events, usage."""

from __future__ import annotations

import json
from typing import Any

from app.audio.chunking import Chunk
from app.audio.pcm import SAMPLE_RATE
from app.config import SubtitleSettings
from app.engine import Segment, TokenLogprob, Word
from app.transcription.events import StreamEvents, done_event, tokens_by_word
from app.transcription.protocol import StreamEvent, to_json
from app.transcription.render import render_body
from app.transcription.result import ChunkResult, Transcription


def seconds(start_s: float, end_s: float) -> Chunk:
    return Chunk(int(start_s * SAMPLE_RATE), int(end_s * SAMPLE_RATE))


def segment(words: list[Word], tokens: list[str], logprob: float = -0.25) -> Segment:
    return Segment(
        start_s=words[0].start_s,
        end_s=words[-1].end_s,
        text="".join(w.word for w in words),
        tokens=tuple(range(len(tokens))),
        avg_logprob=logprob,
        compression_ratio=1.1,
        no_speech_prob=0.01,
        temperature=0.0,
        words=tuple(words),
        logprobs=tuple(TokenLogprob(t, -0.1 * (i + 1)) for i, t in enumerate(tokens)),
    )


# One segment whose last word falls in the second chunk, then a segment of the second chunk.
HELLO, WORLD, CAFE = (
    Word(1.0, 1.4, " Hello", 0.9),
    Word(1.5, 1.9, " wörld,", 0.8),
    Word(3.1, 3.5, " café", 0.7),
)
SPANNING = segment([HELLO, WORLD, CAFE], [" Hello", " w", "ör", "ld", ",", " caf", "é"])
AGAIN = Word(4.0, 4.4, " again", 0.6)
SECOND = segment([AGAIN], [" again"], logprob=-0.5)
RESULTS = (
    ChunkResult(0, seconds(0.8, 2.2), (SPANNING,), (HELLO, WORLD), "en"),
    ChunkResult(1, seconds(2.9, 4.6), (SECOND,), (CAFE, AGAIN), "en"),
)


def wire(events: list[StreamEvent]) -> list[dict[str, Any]]:
    """Events as the client reads them."""
    return [json.loads(to_json(e)) for e in events]


def tokens_text(logprobs: list[dict[str, object]]) -> str:
    return "".join(str(lp["token"]) for lp in logprobs)


def test_json_logprobs_only_when_included_with_utf8_bytes() -> None:
    layout = SubtitleSettings()
    plain = json.loads(render_body(Transcription(RESULTS, 5.0, "en-US"), "json", layout))
    assert "logprobs" not in plain
    body = json.loads(render_body(Transcription(RESULTS, 5.0, "en-US", logprobs=True), "json", layout))
    logprobs = body["logprobs"]
    assert tokens_text(logprobs) == SPANNING.text + SECOND.text
    assert all(lp["logprob"] <= 0 for lp in logprobs)
    by_token = {lp["token"]: lp["bytes"] for lp in logprobs}
    assert by_token["é"] == [0xC3, 0xA9]  # UTF-8 of U+00E9
    assert by_token["ör"] == [0xC3, 0xB6, ord("r")]
    assert bytes(b for lp in logprobs for b in lp["bytes"]).decode() == tokens_text(logprobs)


def test_tokens_are_split_over_their_words() -> None:
    groups = tokens_by_word(SPANNING)
    assert ["".join(t.token for t in g) for g in groups] == [w.word for w in SPANNING.words]
    misaligned = segment([HELLO], [" Hel", "lo", " extra"])  # more token text than word text
    assert [len(g) for g in tokens_by_word(misaligned)] == [3]


def test_stream_events_carry_each_chunks_own_tokens_words_and_segments() -> None:
    render = StreamEvents(words=True, segments=True, logprobs=True)
    first, second = wire(render.chunk(RESULTS[0])), wire(render.chunk(RESULTS[1]))
    assert [e["type"] for e in first] == [
        "transcript.text.delta",
        "transcript.word",
        "transcript.word",
        "transcript.segment",
    ]
    delta1, delta2 = first[0], second[0]
    assert delta1["delta"] == delta1["text"] == "Hello wörld,"
    assert delta2["delta"] == " café again"  # joined with a space, like done's text
    # each delta has the tokens of exactly its words, although the segment spans both chunks
    assert tokens_text(delta1["logprobs"]) == " Hello wörld,"
    assert tokens_text(delta2["logprobs"]) == " café again"
    assert (delta2["id"], delta2["offset"], delta2["duration"]) == ("1", 2.9, 1.7)
    words = [e for e in first + second if e["type"] == "transcript.word"]
    assert [(w["word"], w["segment"]) for w in words] == [
        ("Hello", 0),
        ("wörld,", 0),
        ("café", 0),
        ("again", 1),
    ]
    assert all(0 <= w["confidence"] <= 1 and w["start"] < w["end"] for w in words)
    segments = [e["segment"] for e in first + second if e["type"] == "transcript.segment"]
    assert [(s["id"], s["start"], s["end"], s["text"]) for s in segments] == [
        (0, 1.0, 3.5, SPANNING.text),
        (1, 4.0, 4.4, SECOND.text),
    ]
    assert all(s["avg_logprob"] <= 0 < s["compression_ratio"] for s in segments)


def test_stream_events_without_extras() -> None:
    render = StreamEvents(words=False, segments=False, logprobs=False)
    events = wire([e for r in RESULTS for e in render.chunk(r)])
    assert [e["type"] for e in events] == ["transcript.text.delta"] * 2
    assert all(e["logprobs"] is None for e in events)
    silent = ChunkResult(2, seconds(5.0, 6.0), (), (), "en")
    assert render.chunk(silent) == []


def test_done_event_usage_confidence_and_logprobs() -> None:
    t = Transcription(RESULTS, 7.25, "en-US", logprobs=True)
    (done,) = wire([done_event(t)])
    assert done["usage"] == {"type": "duration", "seconds": 7.25}
    assert done["text"] == "Hello wörld, café again"
    # token-weighted: 7 tokens at -0.25, 1 at -0.5
    assert abs(done["confidence"] - 2.718281828 ** ((7 * -0.25 + 1 * -0.5) / 8)) < 1e-4
    assert tokens_text(done["logprobs"]) == SPANNING.text + SECOND.text
    assert done_event(Transcription(RESULTS, 7.25, "en-US")).logprobs is None
