"""Speakers over HTTP on the fake engine (one word per loud half second) with real diarization of a
two-speaker conversation joined from the eval set: the request fields, diarized_json, verbose_json
speaker fields, segments cut at speaker changes, the stream's events."""

from __future__ import annotations

import io
import itertools
import threading
from functools import cache
from typing import Any

import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from app.config import ModelSpec, Settings
from app.main import create_app
from tests.support.diarization_sets import Recording, conversation
from tests.support.fakes import FakeEngine
from tests.support.harness import sse_events

URL = "/v1/audio/transcriptions"


@cache
def two_speakers() -> tuple[Recording, bytes]:
    rec = conversation(1, 2, turns=4)
    buf = io.BytesIO()
    sf.write(buf, rec.samples, 16000, format="WAV", subtype="PCM_16")
    return rec, buf.getvalue()


def post(client: TestClient, data: dict[str, Any]) -> Any:
    _, audio = two_speakers()
    return client.post(
        URL, data={"model": "whisper-1", **data}, files={"file": ("c.wav", audio, "audio/wav")}
    )


def reference_speaker(start: float, end: float) -> str:
    """Who the joined conversation says speaks most over [start, end]."""
    rec, _ = two_speakers()
    overlap: dict[str, float] = {}
    for s, e, who in rec.reference:
        overlap[who] = overlap.get(who, 0.0) + max(0.0, min(e, end) - max(s, start))
    return max(overlap, key=lambda k: overlap[k])


def check_matches_reference(items: list[dict[str, Any]], key: str) -> None:
    """Each labelled item's speaker is the reference speaker, up to one consistent renaming."""
    mapping: dict[str, str] = {}
    for item in items:
        truth = reference_speaker(item["start"], item["end"])
        assert mapping.setdefault(item[key], truth) == truth, (item, mapping)
    assert len(set(mapping.values())) == 2


def test_diarized_json(client: TestClient) -> None:
    body = post(client, {"response_format": "diarized_json"}).json()
    segments = body["segments"]
    assert body["task"] == "transcribe" and body["usage"]["type"] == "duration"
    assert {s["type"] for s in segments} == {"transcript.text.segment"}
    assert [s["id"] for s in segments] == [f"seg_{i}" for i in range(len(segments))]
    assert {s["speaker"] for s in segments} == {"A", "B"} and segments[0]["speaker"] == "A"
    assert " ".join(s["text"] for s in segments) == body["text"]
    check_matches_reference(segments, "speaker")


def test_verbose_json_speakers_on_segments_and_words(client: TestClient) -> None:
    data = {
        "response_format": "verbose_json",
        "timestamp_granularities[]": "word",
        "extra_body": '{"diarize": true, "num_speakers": 2}',
    }
    body = post(client, data).json()
    segments, words = body["segments"], body["words"]
    assert body["speakers"] == ["Guest-1", "Guest-2"]
    assert {s["speaker_id"] for s in segments} == {"Guest-1", "Guest-2"}
    check_matches_reference(segments, "speaker_id")
    # Segments are cut where the speaker changes: each one's words share its speaker.
    for w in words:
        assert w["speaker_id"] == segments[w["segment"]]["speaker_id"]
    changes = sum(a["speaker_id"] != b["speaker_id"] for a, b in itertools.pairwise(segments))
    assert changes >= 3  # four turns


def test_no_speaker_fields_unless_asked(client: TestClient) -> None:
    body = post(client, {"response_format": "verbose_json"}).json()
    assert "speakers" not in body and all("speaker_id" not in s for s in body["segments"])


def test_stream_keeps_its_deltas_and_settles_speakers_at_the_end(client: TestClient) -> None:
    r = post(client, {"stream": "true", "response_format": "diarized_json"})
    events = sse_events(r.text)
    types = [e if isinstance(e, str) else e["type"] for e in events]
    first_segment = types.index("transcript.text.segment")
    assert types[0] == "transcript.text.delta" and first_segment > 0
    assert types[-2:] == ["transcript.text.done", "[DONE]"]
    segments = [e for e in events[:-1] if e["type"] == "transcript.text.segment"]
    assert {s["speaker"] for s in segments} == {"A", "B"}
    check_matches_reference(segments, "speaker")
    done = events[-2]
    assert " ".join(s["text"] for s in segments) == done["text"]


def test_air_stream_segment_events_carry_speaker_ids(client: TestClient) -> None:
    r = post(client, {"stream": "True", "diarize": "True", "timestamp_granularities": '["segment"]'})
    events = [e for e in sse_events(r.text) if isinstance(e, dict)]
    segments = [e["segment"] for e in events if e["type"] == "transcript.segment"]
    assert segments and {s["speaker_id"] for s in segments} == {"Guest-1", "Guest-2"}
    assert not any(e["type"] == "transcript.text.segment" for e in events)  # AIR drops unknown types
    deltas = [e for e in events if e["type"] == "transcript.text.delta"]
    assert all(d.get("speaker_id") in (None, "Guest-1", "Guest-2") for d in deltas)


@pytest.mark.parametrize(
    ("data", "mentions"),
    [
        ({"num_speakers": "0"}, "num_speakers"),
        ({"max_speakers": "500"}, "max_speakers"),
        ({"min_speakers": "3", "max_speakers": "2"}, "min_speakers"),
        ({"diarize": "maybe"}, "diarize"),
    ],
)
def test_bad_speaker_fields(client: TestClient, data: dict[str, str], mentions: str) -> None:
    r = post(client, data)
    assert r.status_code == 400, r.text
    assert mentions in r.json()["error"]


def test_the_diarization_thread_ends_with_the_app(fake_engine: FakeEngine) -> None:
    models = {"tiny.en": ModelSpec(aliases=("whisper-1",))}
    app = create_app(Settings(models=models), engines={"tiny.en": fake_engine})
    before = set(threading.enumerate())
    with TestClient(app) as client:
        assert post(client, {"response_format": "diarized_json"}).status_code == 200
        started = [t for t in threading.enumerate() if t not in before and t.name.startswith("diarize")]
        assert len(started) == 1  # the app's own diarization thread
    started[0].join(10)  # the lifespan shut it down
    assert not started[0].is_alive()
