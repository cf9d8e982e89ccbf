"""The real engine: batching changes speed, not results."""

from __future__ import annotations

import pytest

from app.audio import PcmFormat, decode_audio
from app.engine import DecodeOptions, WhisperEngine, _Window
from app.registry import embedded_model_path
from tests.evalset import clips


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    return WhisperEngine(embedded_model_path(), device="cpu", max_batch_size=8, batch_wait_s=0.5)


def test_batched_windows_decode_as_faster_whisper_decodes_each_alone(engine: WhisperEngine) -> None:
    samples = [
        decode_audio(c.path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=60).samples
        for c in clips("short")[:3]
    ]
    options = DecodeOptions(language="en", word_timestamps=True)
    futures = [engine.submit(s, options) for s in samples]  # one batch
    batched = [f.result(timeout=600) for f in futures]
    for s, b in zip(samples, batched, strict=True):
        alone = engine._sequential(_Window(s, options))  # faster-whisper's own transcribe loop
        assert b.text
        assert b.text == alone.text
        words = [w for seg in b.segments for w in seg.words]
        assert [w.word for w in words] == [w.word for seg in alone.segments for w in seg.words]
        assert all(0 <= w.start_s <= w.end_s <= len(s) / 16000 + 0.5 for w in words)
