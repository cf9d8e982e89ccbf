"""multichannel=true on the fake engine: channels kept apart by the decode (and charged for all of
them), each channel's words on its own channel, and the bad inputs (mono, too many channels)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient

from app.audio.chunking import Chunk
from app.audio.decode import decode_audio
from app.audio.pcm import PcmFormat
from app.engine import Segment, Word
from app.transcription.channels import channel_names, channel_turns, keep_words
from app.transcription.render import speaker_label
from app.transcription.result import ChunkResult
from tests.support.audiogen import silence, speechlike
from tests.support.harness import MakeClient, sse_events

URL = "/v1/audio/transcriptions"


def wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def call(channels: int = 2) -> tuple[bytes, list[tuple[float, float, int]]]:
    """Speech-like turns on each channel in turn (1.5 s each, 0.8 s apart), the others leaking in
    at -20 dB; the turns as (start_s, end_s, channel)."""
    own: list[list[np.ndarray]] = [[silence(0.5)] for _ in range(channels)]
    turns, t = [], 0.5
    for k in range(2 * channels):
        burst = speechlike(1.5, seed=k + 1)
        for c in range(channels):
            own[c] += [burst if c == k % channels else np.zeros_like(burst), silence(0.8)]
        turns.append((t, t + 1.5, k % channels))
        t += 2.3
    clean = np.stack([np.concatenate(parts) for parts in own], axis=1)
    mixed = clean + 0.1 * (clean.sum(axis=1, keepdims=True) - clean)
    return wav(mixed), turns


def post(client: TestClient, audio: bytes, data: dict[str, Any]) -> Any:
    return client.post(
        URL, data={"model": "whisper-1", **data}, files={"file": ("c.wav", audio, "audio/wav")}
    )


def test_words_and_segments_carry_their_channel(client: TestClient) -> None:
    audio, turns = call()
    data = {"response_format": "verbose_json", "timestamp_granularities[]": "word", "multichannel": "true"}
    body = post(client, audio, data).json()
    assert body["words"] and body["speakers"] == ["Guest-1", "Guest-2"]
    for w in body["words"]:
        middle = (w["start"] + w["end"]) / 2
        channel = next(c for s, e, c in turns if s - 0.3 <= middle <= e + 0.3)
        assert w["channel"] == channel and w["speaker"] == "AB"[channel], (w, turns)
    for s in body["segments"]:
        assert s["speaker_id"] == f"Guest-{s['channel'] + 1}"
    starts = [s["start"] for s in body["segments"]]
    assert starts == sorted(starts)  # one timeline


def test_diarized_json_and_stream_by_channel(client: TestClient) -> None:
    audio, _ = call()
    body = post(client, audio, {"response_format": "diarized_json", "multichannel": "true"}).json()
    assert {(s["speaker"], s["channel"]) for s in body["segments"]} == {("A", 0), ("B", 1)}
    data = {"stream": "true", "multichannel": "true", "timestamp_granularities[]": ["word", "segment"]}
    events = [e for e in sse_events(post(client, audio, data).text) if e != "[DONE]"]
    deltas = [e for e in events if e["type"] == "transcript.text.delta"]
    assert {d["speaker"] for d in deltas} == {"A", "B"}
    words = [e for e in events if e["type"] == "transcript.word"]
    segments = [e["segment"] for e in events if e["type"] == "transcript.segment"]
    assert words and {w["channel"] for w in words} == {0, 1} == {s["channel"] for s in segments}
    assert events[-1]["type"] == "transcript.text.done"
    assert events[-1]["text"] == "".join(d["delta"] for d in deltas)


def test_mono_is_refused(client: TestClient) -> None:
    mono = wav(np.concatenate([silence(0.5), speechlike(1.5), silence(0.5)]))
    r = post(client, mono, {"extra_body": '{"multichannel": true}'})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_request" and "mono" in r.json()["error"]


def test_too_many_channels_are_refused(make_client: MakeClient) -> None:
    audio, _ = call(channels=3)
    r = post(make_client(multichannel_max_channels=2), audio, {"multichannel": "true"})
    assert r.status_code == 400, r.text
    assert "at most 2 channels" in r.json()["error"] and "has 3" in r.json()["error"]
    assert post(make_client(multichannel_max_channels=3), audio, {"multichannel": "true"}).status_code == 200


def test_the_decode_keeps_and_charges_every_channel() -> None:
    stereo = np.stack([speechlike(1.0, seed=1), 0.5 * speechlike(1.0, seed=2)], axis=1)
    charged: list[int] = []
    for rate in (16000, 8000):
        charged.clear()
        audio = decode_audio(
            wav(stereo, rate), content_type=None, pcm=PcmFormat(), max_duration_s=10,
            charge=charged.append, split_channels=4,
        )  # fmt: skip
        frames = 16000 * len(stereo) // rate
        assert audio.pcm.shape == (frames, 2)
        assert sum(charged) == audio.pcm.nbytes == frames * 2 * 2
        left, right = (np.abs(audio.pcm[:, c].astype(float)).mean() for c in (0, 1))
        assert 1.6 < left / right < 2.4  # apart, not downmixed
    raw = decode_audio(
        (np.asarray(stereo * 20000, "<i2")).tobytes(), content_type="audio/pcm;channels=2",
        pcm=PcmFormat(), max_duration_s=10, split_channels=4,
    )  # fmt: skip
    assert raw.pcm.shape == (len(stereo), 2)


def test_keep_words_cuts_a_segment_around_its_echoes() -> None:
    words = tuple(Word(i * 0.5, i * 0.5 + 0.4, f" w{i}", 0.9) for i in range(4))
    segment = Segment(0.0, 1.9, " w0 w1 w2 w3", (1, 2, 3, 4), -0.1, 1.2, 0.01, 0.0, words=words)
    pieces = keep_words(segment, [True, False, False, True])
    assert [p.text for p in pieces] == [" w0", " w3"]
    assert [p.tokens for p in pieces] == [(1,), (4,)] and [(p.start_s, p.end_s) for p in pieces] == [
        (0.0, 0.4),
        (1.5, 1.9),
    ]
    assert keep_words(segment, [True] * 4) == [segment] and keep_words(segment, [False] * 4) == []


def test_known_speaker_names_name_the_channels_in_order() -> None:
    assert channel_names(3, ["agent", "customer"]) == ("agent", "customer")
    assert channel_names(2, ["agent", "customer", "supervisor"]) == ("agent", "customer")
    assert channel_names(2) == ()
    results = [
        ChunkResult(
            k, Chunk(16000 * k, 16000 * k + 8000), (), (Word(k, k + 0.4, " w", 0.9),), "en", channel=k % 2
        )
        for k in range(3)
    ]
    turns = channel_turns(results, ["agent", "customer"])
    assert [t.speaker for t in turns.turns] == [0, 1, 0] and turns.names == ("agent", "customer")
    assert [speaker_label(t.speaker, turns.names) for t in turns.turns] == ["agent", "customer", "agent"]
