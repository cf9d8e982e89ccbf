"""multichannel=true on the real server and model: a stereo call joined from eval readers (one per
channel, the other leaking in at -20 dB) comes back with each word on its talker's channel, every
response format parses with the channels as speakers, and a stream's events carry the channel."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import httpx
import pytest

from tests.support.harness import LiveServer, sse_events
from tests.support.stereo_calls import StereoCall, channel_wer, right_channel_share, stereo_call

URL = "/v1/audio/transcriptions"


@cache
def call() -> StereoCall:
    return stereo_call(1, turns=4)


def post(server: LiveServer, **fields: Any) -> httpx.Response:
    files = {"file": ("call.wav", call().wav(), "audio/wav")}
    data = {"model": "whisper-1", "multichannel": "true", **fields}
    return httpx.post(server.base_url + URL, data=data, files=files, timeout=300)


@pytest.fixture(scope="module")
def verbose(live_server: LiveServer) -> dict[str, Any]:
    r = post(live_server, response_format="verbose_json", **{"timestamp_granularities[]": "word"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_words_are_on_their_talkers_channel(verbose: dict[str, Any]) -> None:
    right, judged = right_channel_share(call(), verbose["words"])
    assert judged >= 40 and right / judged >= 0.95, (right, judged)
    for channel in (0, 1):  # each channel has its talker's words, not the other's echo as well
        assert channel_wer(call(), channel, verbose["words"]) < 0.3
    assert {(w["channel"], w["speaker"], w["speaker_id"]) for w in verbose["words"]} == {
        (0, "A", "Guest-1"),
        (1, "B", "Guest-2"),
    }
    starts = [s["start"] for s in verbose["segments"]]
    assert starts == sorted(starts)
    assert verbose["text"] == " ".join(s["text"].strip() for s in verbose["segments"])


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "diarized_json"])
def test_every_format(live_server: LiveServer, verbose: dict[str, Any], fmt: str) -> None:
    r = post(live_server, response_format=fmt)
    assert r.status_code == 200, r.text
    words = [w["word"].lower().strip(".,?!") for w in verbose["words"]]
    if fmt in {"json", "diarized_json"}:
        body = r.json()
        assert body["text"] == verbose["text"]
        if fmt == "diarized_json":
            assert {(s["speaker"], s["channel"]) for s in body["segments"]} == {("A", 0), ("B", 1)}
    else:
        text = r.text.lower()
        assert sum(w in text for w in words) >= 0.9 * len(words)
        if fmt != "text":
            assert "-->" in r.text and r.text.startswith("WEBVTT" if fmt == "vtt" else "1\n")


def test_stream_events_carry_the_channel(live_server: LiveServer) -> None:
    r = post(live_server, stream="true", **{"timestamp_granularities[]": ["word", "segment"]})
    assert r.status_code == 200, r.text
    events = sse_events(r.text)
    assert events[-1] == "[DONE]" and events[-2]["type"] == "transcript.text.done"
    deltas = [e for e in events[:-1] if e["type"] == "transcript.text.delta"]
    assert {d["speaker"] for d in deltas} == {"A", "B"}
    assert "".join(d["delta"] for d in deltas) == events[-2]["text"]
    words = [e for e in events[:-1] if e["type"] == "transcript.word"]
    segments = [e["segment"] for e in events[:-1] if e["type"] == "transcript.segment"]
    right, judged = right_channel_share(call(), words)
    assert judged >= 40 and right / judged >= 0.95, (right, judged)
    assert {s["channel"] for s in segments} == {0, 1}


def test_mono_and_too_many_channels_are_400(live_server: LiveServer) -> None:
    mono = call().wav(call().samples[:, 0])
    r = httpx.post(
        live_server.base_url + URL,
        data={"model": "whisper-1", "extra_body": json.dumps({"multichannel": True})},
        files={"file": ("mono.wav", mono, "audio/wav")},
        timeout=60,
    )
    assert r.status_code == 400 and r.json()["code"] == "invalid_request" and "mono" in r.json()["error"]
    samples = call().samples
    five = call().wav(samples[:, [0, 1, 0, 1, 0]])  # more than multichannel_max_channels (4)
    r = httpx.post(
        live_server.base_url + URL,
        data={"model": "whisper-1", "multichannel": "true"},
        files={"file": ("five.wav", five, "audio/wav")},
        timeout=60,
    )
    assert r.status_code == 400 and "at most 4 channels" in r.json()["error"], r.text
