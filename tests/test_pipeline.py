"""Windows of chunks and the mapping of words back to chunks, with the fake engine."""

from __future__ import annotations

import anyio
import numpy as np

from app.audio import SAMPLE_RATE, Audio
from app.engine import DecodeOptions
from app.pipeline import ChunkResult, Transcriber, pack_windows
from app.vad import Chunk
from tests.audiogen import silence, tone
from tests.fakes import FakeEngine


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
        t = Transcriber(1, 0)
        return [
            r
            async for r in t.run(
                engine,
                audio,
                chunks,
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
    audio = Audio(samples, SAMPLE_RATE, 1, "wav")
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
