"""Windows of chunks and the mapping of words back to chunks, with the fake engine."""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from app.audio.chunking import Chunk
from app.audio.feed import ChunkFeed
from app.audio.pcm import SAMPLE_RATE, Audio
from app.engine import DecodeOptions, DecodeResult, Segment, Word
from app.transcription.result import ChunkResult
from app.transcription.windows import WindowRunner, _split_window, pack_windows, split_lanes
from tests.support.audiogen import silence, tone
from tests.support.fakes import FakeEngine


def seconds(start_s: float, end_s: float) -> Chunk:
    return Chunk(int(start_s * SAMPLE_RATE), int(end_s * SAMPLE_RATE))


def test_windows_span_at_most_window_s() -> None:
    chunks = [seconds(i * 10, i * 10 + 8) for i in range(6)]  # 8 s of speech every 10 s
    assert [len(w) for w in pack_windows(chunks, 29.5)] == [3, 3]
    assert [len(w) for w in pack_windows(chunks, 29.5, first_alone=True)] == [1, 3, 2]
    for window in pack_windows(chunks, 20.0):
        assert window[-1].end - window[0].start <= 20 * SAMPLE_RATE
    assert [c for w in pack_windows(chunks, 20.0) for c in w] == chunks


def run(audio: Audio, chunks: list[Chunk], engine: FakeEngine) -> list[ChunkResult]:
    async def collect() -> list[ChunkResult]:
        t = WindowRunner(1)
        return [
            r
            async for r in t.run(
                engine,
                ChunkFeed.complete(audio, chunks),
                DecodeOptions(language="en"),
                condition_on_previous_text=True,
                window_s=29.5,
                streaming=True,
            )
        ]

    return anyio.run(collect)


def test_words_land_in_their_chunk_at_upload_time() -> None:
    # speech (tone) at 1-2 s, 4-5.5 s and 8-9 s; chunks cover them with padding.
    samples = np.concatenate([silence(1), tone(1), silence(2), tone(1.5), silence(2.5), tone(1), silence(1)])
    audio = Audio.from_float(samples)
    chunks = [seconds(0.5, 2.5), seconds(3.5, 6.0), seconds(7.5, 9.5)]
    engine = FakeEngine()
    results = run(audio, chunks, engine)
    assert [r.index for r in results] == [0, 1, 2]
    assert engine.calls == 2  # first chunk alone, then the other two together
    for r in results:
        assert r.words
        for w in r.words:
            assert r.chunk.start_s <= w.start_s <= w.end_s <= r.chunk.start_s + r.chunk.duration_s
    # tone at 4.0-5.5 s: its words are timed inside it (to the 0.5 s slot of the fake)
    assert abs(results[1].words[0].start_s - 4.0) <= 0.5
    assert abs(results[2].words[0].start_s - 8.0) <= 0.5
    # the previous window's text is the next window's prompt
    assert engine.options[1].prompt == results[0].text


@pytest.mark.parametrize(
    ("n", "max_lanes", "lane_windows"), [(1, 8, 3), (4, 8, 3), (10, 8, 3), (20, 4, 2), (7, 8, 1)]
)
@pytest.mark.parametrize("at_least", [1, 2, 8])
def test_lanes_cover_every_window_once_in_order(
    n: int, max_lanes: int, lane_windows: int, at_least: int
) -> None:
    lanes = split_lanes(n, max_lanes, lane_windows, at_least)
    assert [w for lane in lanes for w in lane] == list(range(n))
    assert 1 <= len(lanes) <= max_lanes
    # every worker has a lane where there are windows for it; otherwise lanes are lane_windows long
    assert len(lanes) >= min(at_least, n, max_lanes)
    if len(lanes) > min(at_least, n):
        assert min(len(lane) for lane in lanes) >= lane_windows


def test_lanes_decode_side_by_side_and_results_keep_their_order() -> None:
    # six 8 s bursts of "speech", one window each (window_s 9): three lanes of two windows.
    samples = np.concatenate([np.concatenate([tone(8), silence(2)]) for _ in range(6)])
    audio = Audio.from_float(samples)
    chunks = [seconds(i * 10, i * 10 + 8) for i in range(6)]
    engine = FakeEngine(delay_s=0.3, encodes_ahead=True)
    feed = ChunkFeed.complete(audio, chunks)

    async def collect() -> list[ChunkResult]:
        t = WindowRunner(1, max_lanes=3, lane_windows=2)
        options = DecodeOptions(language="en")
        return [r async for r in t.run(engine, feed, options, condition_on_previous_text=True, window_s=9)]

    results = anyio.run(collect)
    assert [r.index for r in results] == list(range(6))
    assert all(r.text for r in results)
    prompts = [o.prompt for o in engine.options]
    # each lane's first window starts without context, its second gets the first's text
    assert sorted(p is None for p in prompts) == [False] * 3 + [True] * 3
    assert engine.max_in_flight == 3
    # each lane's second window was encoded while its first decoded (and is that window's encoding)
    expected = [(p, True) for p in prompts if p] + [(None, False)] * 3
    assert sorted(engine.ahead, key=repr) == sorted(expected, key=repr)


def test_a_word_stretched_back_over_a_pause_starts_with_the_speech() -> None:
    """Whisper often starts the first word after a pause at the end of the previous word."""
    window = [
        Chunk(0, 2 * SAMPLE_RATE, speech_start=int(0.3 * SAMPLE_RATE)),
        Chunk(5 * SAMPLE_RATE, 8 * SAMPLE_RATE, speech_start=int(5.3 * SAMPLE_RATE)),
    ]
    words = (Word(0.3, 1.0, " one", 0.9), Word(1.0, 5.9, " two", 0.9), Word(5.9, 6.4, " three", 0.9))
    segment = Segment(0.3, 6.4, " one two three", (1, 2, 3), -0.1, 1.2, 0.01, 0.0, words)
    # window-relative times: the window starts at 0 s here, so they equal the file's
    results = _split_window(DecodeResult((segment,), "en", 1.0), window, 0)
    placed = [w for r in results for w in r.words]
    assert [(w.word, w.start_s) for w in placed] == [(" one", 0.3), (" two", 5.3), (" three", 5.9)]
    assert [r.text for r in results] == ["one", "two three"]
