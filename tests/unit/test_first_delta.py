"""A stream's first delta does not wait for the whole upload: decode, VAD and chunking run a block
at a time, and the first chunk is transcribed (its language detected first when none is given) as
soon as it is final. Shown by causality, not timing: the upload's second half cannot be read until
the first delta is out (fake engines)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import threading
import time
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from app.audio.chunking import Chunk, ChunkingOptions, chunk_frames, chunking_options
from app.audio.decode import decode_audio
from app.audio.feed import ChunkFeed, speech_chunks
from app.audio.pcm import SAMPLE_RATE, Audio, DecodeLimits, Listener, PcmFormat, Samples, Sink, to_int16
from app.audio.vad import detect_speech
from app.config import ModelSpec, VadSettings
from app.engine import DecodeOptions, DecodeResult
from app.errors import UploadTooLarge
from app.transcription.params import Upload, parse_params
from app.transcription.protocol import to_json
from app.transcription.service import TranscriptionService
from tests.support.audiogen import silence, speechlike, unknown_length, wav_bytes
from tests.support.fakes import FakeEngine
from tests.support.harness import MakeClient, sse_events

GATE_TIMEOUT_S = 60


class GatedFile(io.BytesIO):
    """An upload whose second half cannot be read until ``gate`` is set."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.half = len(data) // 2
        self.gate = threading.Event()
        self.waited = False

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() + (size if size is not None and size >= 0 else self.half) > self.half:
            self.waited = True
            assert self.gate.wait(GATE_TIMEOUT_S), "the upload's second half was not let through in time"
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@pytest.fixture(scope="module")
def long_speech() -> bytes:
    """Three minutes of speech-like bursts between short pauses (a WAV: decoded block by block)."""
    burst = np.concatenate([speechlike(1.5), silence(0.6)])
    return wav_bytes(np.concatenate([silence(0.5), *[burst] * 86]))


class Run:
    """One stream over a gated upload, run on the app's event loop."""

    def __init__(self, client: TestClient, data: bytes, **fields: str) -> None:
        service: TranscriptionService = client.app.state.service  # type: ignore[attr-defined]
        self.upload = GatedFile(data)
        self.events: list[dict[str, Any]] = []
        self.decoded_s = -1.0  # audio decoded when the first delta came
        self.gate_was_shut = False
        self.chunks: list[Chunk] = []
        params = parse_params({"model": "whisper-1", "stream": "true", **fields})

        async def scenario() -> None:
            with client.app.state.admission.enter() as ticket:  # type: ignore[attr-defined]
                job = await service.prepare(Upload(params, self.upload, "long.wav", "audio/wav"), ticket)
                try:
                    async for typed in service.events(job):
                        event = json.loads(to_json(typed))  # as the client reads it
                        if event["type"] == "transcript.text.delta" and self.decoded_s < 0:
                            self.decoded_s, self.gate_was_shut = (
                                job.feed.duration_s,
                                not self.upload.gate.is_set(),
                            )
                            self.upload.gate.set()
                        self.events.append(event)
                finally:
                    self.upload.gate.set()
                    await job.feed.close()
                self.chunks = job.feed.chunks

        client.portal.call(scenario)  # type: ignore[union-attr]


def whole_file_chunks(data: bytes, service: TranscriptionService) -> list[Chunk]:
    audio = decode_audio(data, content_type=None, pcm=PcmFormat(), max_duration_s=600)
    opts = chunking_options(service.settings.vad)
    return chunk_frames(detect_speech(audio.pcm, opts.aggressiveness), len(audio.pcm), opts)


def assert_streamed_early(run: Run, data: bytes) -> None:
    total_s = decode_audio(data, content_type=None, pcm=PcmFormat(), max_duration_s=600).duration_s
    assert run.gate_was_shut and run.upload.waited  # the decode stood at the gate as the first delta went
    assert 0 < run.decoded_s < total_s / 2
    done = run.events[-1]
    assert done["type"] == "transcript.text.done", done
    deltas = [e["delta"] for e in run.events if e["type"] == "transcript.text.delta"]
    assert len(deltas) > 3 and "".join(deltas) == done["text"]
    assert abs(done["usage"]["seconds"] - total_s) < 0.01


def test_the_first_delta_comes_while_the_upload_is_still_being_decoded(
    client: TestClient, long_speech: bytes
) -> None:
    run = Run(client, long_speech, language="en")
    assert_streamed_early(run, long_speech)
    # Cut block by block, the upload gets the chunks VAD over all of it gives.
    assert run.chunks == whole_file_chunks(long_speech, client.app.state.service)  # type: ignore[attr-defined]


class SureOnLongWindows(FakeEngine):
    """An English model unsure of a short first chunk (a word or two) and sure of 5 s and more."""

    def transcribe(self, samples: Samples, options: DecodeOptions) -> DecodeResult:
        result = super().transcribe(samples, options)
        sure = -0.1 if len(samples) >= 5 * SAMPLE_RATE else -1.0
        segments = tuple(dataclasses.replace(s, avg_logprob=sure) for s in result.segments)
        return dataclasses.replace(result, segments=segments)


@pytest.mark.parametrize(
    ("sure_of_english", "detections"), [("always", 0), ("on its opening", 0), ("never", 1)]
)
def test_language_detection_waits_for_the_first_chunk_only(
    make_client: MakeClient, long_speech: bytes, sure_of_english: str, detections: int
) -> None:
    """Decided by the English model's decode of the first chunk, else of the stream's first seconds, else
    (unsure) detected on base."""
    english = {
        "always": FakeEngine(avg_logprob=-0.1),
        "on its opening": SureOnLongWindows(avg_logprob=-1.0),
        "never": FakeEngine(avg_logprob=-1.0),
    }[sure_of_english]
    multilingual = FakeEngine(english_only=False, hears="en")
    models = {
        "tiny.en": ModelSpec(aliases=("whisper-1",), multilingual_model="base"),
        "base": ModelSpec(aliases=()),
    }
    client = make_client(english, others={"base": multilingual}, models=models)
    run = Run(client, long_speech)
    assert multilingual.detections == detections
    assert_streamed_early(run, long_speech)


class Timed(SureOnLongWindows):
    """Notes when each decode ran, and whether it was on the short encoder window."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spans: list[tuple[bool, float, float]] = []

    def transcribe(self, samples: Samples, options: DecodeOptions) -> DecodeResult:
        began = time.monotonic()
        result = super().transcribe(samples, options)
        with self._lock:
            self.spans.append((options.short_window, began, time.monotonic()))
        return result


def stream_without_language(make_client: MakeClient, english: FakeEngine, data: bytes) -> FakeEngine:
    multilingual = FakeEngine(english_only=False, hears="en")
    models = {
        "tiny.en": ModelSpec(aliases=("whisper-1",), multilingual_model="base"),
        "base": ModelSpec(aliases=()),
    }
    run = Run(make_client(english, others={"base": multilingual}, models=models), data)
    assert_streamed_early(run, data)
    return multilingual


def test_a_short_first_chunk_is_heard_again_while_it_decodes(
    make_client: MakeClient, long_speech: bytes
) -> None:
    """The first delta waits for the longer of the two decodes, not for both one after the other."""
    english = Timed(delay_s=0.3, avg_logprob=-1.0)
    assert stream_without_language(make_client, english, long_speech).detections == 0
    head = min((span for span in english.spans if not span[0]), key=lambda span: span[1])
    quick = [span for span in english.spans if span[0]]
    assert len(quick) == 1 and quick[0][1] < head[2]  # started before the first chunk's decode was done


def test_a_long_first_chunk_the_english_model_is_sure_of_is_not_heard_again(make_client: MakeClient) -> None:
    english = Timed(avg_logprob=-1.0)  # sure of 5 s and more
    data = wav_bytes(np.concatenate([silence(0.5), speechlike(6.0), silence(0.8), talk(60)]))
    assert stream_without_language(make_client, english, data).detections == 0
    assert not any(short for short, _, _ in english.spans)


URL = "/v1/audio/transcriptions"


def test_a_stream_the_budget_cannot_hold_is_refused_before_it_starts(
    make_client: MakeClient, long_speech: bytes
) -> None:
    client = make_client(audio_budget_mb=2.0)  # the header announces ~5.6 MB of decoded audio
    r = client.post(
        URL, data={"model": "whisper-1", "stream": "true"}, files={"file": ("a.wav", long_speech)}
    )
    assert r.status_code == 503 and r.headers["retry-after"].isdigit(), r.text
    assert client.app.state.admission.held_bytes == 0  # type: ignore[attr-defined]


def test_a_limit_found_halfway_ends_the_stream_with_an_error_event(
    make_client: MakeClient, long_speech: bytes
) -> None:
    # A FLAC whose header does not give its length: max_audio_s is only found out while decoding,
    # after the first deltas.
    buffer = io.BytesIO()
    sf.write(buffer, sf.read(io.BytesIO(long_speech), dtype="int16")[0], 16000, format="FLAC")
    flac = unknown_length(buffer.getvalue())
    client = make_client(max_audio_s=100)
    fields = {"model": "whisper-1", "stream": "true", "language": "en"}
    r = client.post(URL, data=fields, files={"file": ("a.flac", flac)})
    assert r.status_code == 200
    events = sse_events(r.text)
    assert any(e["type"] == "transcript.text.delta" for e in events[:-1])
    assert events[-1]["type"] == "error" and "100 s" in events[-1]["error"]["message"], events[-1]
    assert all(e != "[DONE]" and e["type"] != "transcript.text.done" for e in events)
    admission = client.app.state.admission  # type: ignore[attr-defined]
    assert admission.held_bytes == 0 and admission.active == 0


BLOCK = 8000  # half a second per block handed to the feed (VAD flags come a minute at a time)


class Blocks:
    """A decode of ``samples`` half a second at a time, noting how many blocks it has read."""

    def __init__(self, samples: np.ndarray, fail_after: int | None = None) -> None:
        self.pcm = to_int16(samples)
        self.read = 0
        self.fail_after = fail_after

    def __call__(self, listener: Listener) -> Audio:
        sink = Sink(DecodeLimits(600, 10**9), None, listener)
        sink.start(16000, 1, None, "the test")
        for start in range(0, len(self.pcm), BLOCK):
            if self.read == self.fail_after:
                raise UploadTooLarge("too long halfway", field="file")
            self.read += 1
            sink.keep(self.pcm[start : start + BLOCK])
        return sink.finish("wav")


def talk(bursts: int) -> np.ndarray:
    return np.concatenate([silence(0.5), *[np.concatenate([speechlike(1.5), silence(0.6)])] * bursts])


def feed_options() -> ChunkingOptions:
    return ChunkingOptions(**VadSettings().model_dump())  # the server's defaults


def test_the_feed_pauses_after_its_first_chunk_until_asked_for_more() -> None:
    decode = Blocks(talk(40))

    async def scenario() -> None:
        feed = ChunkFeed.decode(decode, feed_options())
        try:
            first = await feed.first()
            assert first is not None and feed.chunks[0] == first
            paused_at = decode.read
            await asyncio.sleep(0.3)  # the rest would be decoded in far less
            assert decode.read == paused_at
            # Two waiters at once both hear of what the decode found.
            want = paused_at * BLOCK + 3 * BLOCK
            again, _ = await asyncio.gather(feed.first(), feed.decoded(want))
            assert again == first and feed.duration_s * 16000 >= want
            assert decode.read == paused_at + 3  # exactly as far as asked, then paused again
            np.testing.assert_array_equal(feed.window(0, want), decode.pcm[:want] / np.float32(32768.0))
        finally:
            await feed.close()  # stops the decode where it stands
        assert decode.read == paused_at + 3 and feed.duration_s * 16000 == decode.read * BLOCK
        assert feed.audio is None

    asyncio.run(scenario())


def test_the_feed_hands_every_chunk_and_a_failure_found_halfway() -> None:
    whole, broken = Blocks(talk(40)), Blocks(talk(40), fail_after=130)

    async def scenario() -> None:
        feed = ChunkFeed.decode(whole, feed_options())
        try:
            assert await feed.first() is not None
            feed.resume()
            chunks = await feed.all()
            assert feed.audio is not None and feed.duration_s == feed.audio.duration_s
            assert len(chunks) == 40 and chunks == speech_chunks(feed.audio, feed_options())
        finally:
            await feed.close()

        feed = ChunkFeed.decode(broken, feed_options())
        try:
            assert await feed.first() is not None  # before the failure: handed over
            feed.resume()
            with pytest.raises(UploadTooLarge, match="halfway"):
                await feed.all()
        finally:
            await feed.close()
        assert feed.duration_s * 16000 == 130 * BLOCK and feed.audio is None

    asyncio.run(scenario())
