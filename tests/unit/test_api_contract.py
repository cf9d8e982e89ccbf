"""The transcription contract on the fake engine: timelines, subtitles, stream events, logprobs,
languages and decoding options."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest
import srt
import webvtt
from fastapi.testclient import TestClient

from app.audio.pcm import Samples
from app.engine import DecodeOptions, DecodeResult, TokenLogprob
from tests.support.audiogen import silence, speechlike, wav_bytes
from tests.support.fakes import FakeEngine
from tests.support.harness import MakeClient, sse_events
from tests.unit.test_api import assert_error, post


class DetectingEngine(FakeEngine):
    """A multilingual fake that 'detects' French when it is given no language."""

    def __init__(self) -> None:
        super().__init__(english_only=False)

    def transcribe(self, samples: Samples, options: DecodeOptions) -> DecodeResult:
        t = super().transcribe(samples, options)
        return t if options.language else dataclasses.replace(t, language="fr")


class LogprobEngine(FakeEngine):
    """Fills segments' token logprobs (one token per word) when asked, as the real engine does."""

    def transcribe(self, samples: Samples, options: DecodeOptions) -> DecodeResult:
        t = super().transcribe(samples, options)
        if not options.logprobs:
            return t
        segments = tuple(
            dataclasses.replace(s, logprobs=tuple(TokenLogprob(w.word, -0.05) for w in s.words))
            for s in t.segments
        )
        return dataclasses.replace(t, segments=segments)


BURSTS_S = ((5.0, 6.5), (7.5, 9.0))  # speech after 5 s of silence, so offsets matter


def late_speech() -> tuple[bytes, float]:
    parts = [silence(5.0), speechlike(1.5), silence(1.0), speechlike(1.5), silence(0.5)]
    return wav_bytes(np.concatenate(parts)), sum(len(p) for p in parts) / 16000


def in_speech(t: float, slack_s: float = 0.35) -> bool:
    return any(a - slack_s <= t <= b + slack_s for a, b in BURSTS_S)


def request_options(engine: FakeEngine, before: int) -> list[DecodeOptions]:
    """What the engine received for one request (after ``before`` earlier calls)."""
    return engine.options[before:]


def test_verbose_json_times_are_on_the_files_timeline(client: TestClient) -> None:
    audio, duration_s = late_speech()
    fields = {
        "model": "whisper-1",
        "response_format": "verbose_json",
        "timestamp_granularities": '["word", "segment"]',
        "include": '["confidence", "segment"]',  # what the AI Refinery SDK always sends
    }
    r = post(client, fields, audio)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert (body["task"], body["language"]) == ("transcribe", "en-US")
    assert body["duration"] == pytest.approx(duration_s, abs=0.01)
    segments, words = body["segments"], body["words"]
    assert [s["id"] for s in segments] == list(range(len(segments))) and segments
    assert body["text"] == " ".join(w["word"] for w in words)
    for s in segments:
        assert 0 <= s["start"] <= s["end"] <= duration_s and s["seek"] >= 0
        assert s["avg_logprob"] <= 0 < s["compression_ratio"]
        assert {"tokens", "temperature", "no_speech_prob"} <= s.keys()  # OpenAI's fields
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    for w in words:
        assert in_speech((w["start"] + w["end"]) / 2), w
        assert 0 <= w["confidence"] <= 1
        owner = segments[w["segment"]]
        assert owner["start"] <= w["start"] <= w["end"] <= owner["end"]
    plain = post(client, {**fields, "timestamp_granularities": "[]"}, audio).json()
    assert "words" not in plain and plain["segments"]


def parse_cues(body: str, fmt: str) -> list[tuple[float, float, str]]:
    """(start, end, text with its line breaks) of each cue, read by a subtitle library."""
    if fmt == "srt":
        return [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(body)]
    return [
        (c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000, c.text)
        for c in webvtt.from_string(body).captions
    ]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_cut_a_long_segment_into_cues_timed_by_its_words(
    make_client: MakeClient, fake_engine: FakeEngine, fmt: str
) -> None:
    audio = wav_bytes(np.concatenate([silence(1.0), speechlike(12.0), silence(1.0)]))
    client = make_client()
    fields = {"model": "whisper-1", "response_format": "verbose_json", "timestamp_granularities[]": "word"}
    verbose = post(client, fields, audio).json()
    (segment,) = verbose["segments"]
    span_s = segment["end"] - segment["start"]
    assert span_s > 7.0  # longer than a cue may be
    before = fake_engine.calls
    r = post(client, {"model": "whisper-1", "response_format": fmt}, audio)
    assert r.headers["content-type"].startswith("application/x-subrip" if fmt == "srt" else "text/vtt")
    assert all(o.word_timestamps for o in request_options(fake_engine, before))
    cues = parse_cues(r.text, fmt)
    assert len(cues) == math.ceil(span_s / 7.0)  # the fewest 7 s cues
    starts = {round(w["start"], 3) for w in verbose["words"]}
    ends = {round(w["end"], 3) for w in verbose["words"]}
    for start, end, text in cues:
        assert round(start, 3) in starts and round(end, 3) in ends and end - start <= 7.0
        assert all(len(line) <= 42 for line in text.splitlines()) and len(text.splitlines()) <= 2
    assert " ".join(" ".join(t.split()) for _, _, t in cues) == segment["text"].strip()


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_one_cue_per_segment_when_line_chars_is_0(
    make_client: MakeClient, fake_engine: FakeEngine, fmt: str
) -> None:
    audio = wav_bytes(np.concatenate([silence(1.0), speechlike(12.0), silence(1.0)]))
    client = make_client(subtitles={"line_chars": 0})
    verbose = post(client, {"model": "whisper-1", "response_format": "verbose_json"}, audio).json()
    before = fake_engine.calls
    cues = parse_cues(post(client, {"model": "whisper-1", "response_format": fmt}, audio).text, fmt)
    assert not any(o.word_timestamps for o in request_options(fake_engine, before))
    expected = [(s["start"], s["end"], s["text"].strip()) for s in verbose["segments"]]
    assert len(cues) == len(expected) == 1 and expected[0][1] - expected[0][0] > 7.0  # kept whole
    for (start, end, text), (s_start, s_end, s_text) in zip(cues, expected, strict=True):
        assert start == pytest.approx(s_start, abs=0.001) and end == pytest.approx(s_end, abs=0.001)
        assert text == s_text


def test_stream_word_and_segment_events_and_usage(client: TestClient) -> None:
    audio, duration_s = late_speech()
    fields = {"model": "whisper-1", "stream": "True", "timestamp_granularities": '["word", "segment"]'}
    events = sse_events(post(client, fields, audio).text)
    assert events[-1] == "[DONE]"
    done = events[-2]
    assert done["type"] == "transcript.text.done"
    assert done["usage"] == {"type": "duration", "seconds": pytest.approx(duration_s, abs=0.01)}
    assert 0 < done["confidence"] <= 1
    words = [e for e in events[:-2] if e["type"] == "transcript.word"]
    segments = [e["segment"] for e in events[:-2] if e["type"] == "transcript.segment"]
    assert " ".join(w["word"] for w in words) == done["text"]
    assert [s["id"] for s in segments] == list(range(len(segments))) and segments
    delta: dict[str, Any] = {}
    for e in events[:-2]:
        if e["type"] == "transcript.text.delta":
            assert {"delta", "text", "id", "offset", "duration"} <= e.keys()
            delta = e
        elif e["type"] == "transcript.word":  # follows its chunk's delta, inside that chunk
            assert delta["offset"] <= (e["start"] + e["end"]) / 2 <= delta["offset"] + delta["duration"]
            assert in_speech(e["start"]) and e["segment"] < len(segments)


def test_stream_segment_events_only_when_asked(client: TestClient) -> None:
    audio, _ = late_speech()
    fields = {"model": "whisper-1", "stream": "true", "timestamp_granularities[]": "segment"}
    types = [e["type"] for e in sse_events(post(client, fields, audio).text)[:-1]]
    assert "transcript.segment" in types and "transcript.word" not in types
    plain = sse_events(post(client, {"model": "whisper-1", "stream": "true"}, audio).text)
    assert {e["type"] for e in plain[:-1]} == {"transcript.text.delta", "transcript.text.done"}


def test_include_logprobs_in_json_and_every_delta(make_client: MakeClient) -> None:
    engine = LogprobEngine()
    client = make_client(engine)
    before = engine.calls
    body = post(client, {"model": "whisper-1", "include": '["logprobs"]'}).json()
    assert all(o.logprobs for o in request_options(engine, before))
    assert "".join(lp["token"] for lp in body["logprobs"]).strip() == body["text"]
    assert all(lp["bytes"] == list(lp["token"].encode()) and lp["logprob"] <= 0 for lp in body["logprobs"])
    before = engine.calls
    plain = post(client, {"model": "whisper-1", "include": '["confidence", "segment"]'}).json()
    assert "logprobs" not in plain and not any(o.logprobs for o in request_options(engine, before))

    events = sse_events(post(client, {"model": "whisper-1", "stream": "true", "include[]": "logprobs"}).text)
    deltas = [e for e in events if isinstance(e, dict) and e["type"] == "transcript.text.delta"]
    assert len(deltas) >= 2
    for d in deltas:
        assert "".join(lp["token"] for lp in d["logprobs"]).strip() == d["delta"].strip()
    done = events[-2]
    assert [lp["token"] for lp in done["logprobs"]] == [lp["token"] for d in deltas for lp in d["logprobs"]]


@pytest.mark.parametrize("language", [None, "auto", "AUTO"])
def test_no_language_detects_and_reports_it(make_client: MakeClient, language: str | None) -> None:
    engine = DetectingEngine()
    client = make_client(engine)
    before = engine.calls
    fields = {"model": "whisper-1", "response_format": "verbose_json"}
    if language is not None:
        fields["language"] = language
    body = post(client, fields).json()
    assert request_options(engine, before)[0].language is None
    assert body["language"] == "fr-FR"


def test_language_is_mapped_both_ways(make_client: MakeClient) -> None:
    engine = DetectingEngine()
    client = make_client(engine)
    before = engine.calls
    body = post(client, {"model": "whisper-1", "response_format": "verbose_json", "language": "de-AT"}).json()
    assert {o.language for o in request_options(engine, before)} == {"de"}
    assert body["language"] == "de-AT"
    before = engine.calls
    body = post(client, {"model": "whisper-1", "response_format": "verbose_json", "language": "pt"}).json()
    assert {o.language for o in request_options(engine, before)} == {"pt"}
    assert body["language"] == "pt-BR"


def test_english_only_model_names_what_it_supports(client: TestClient) -> None:
    assert_error(post(client, {"model": "whisper-1", "language": "fr"}), 400, "supports: en")
    for language in ("en", "en-GB", "auto"):
        assert post(client, {"model": "whisper-1", "language": language}).status_code == 200


def test_prompt_temperature_hotwords_top_level_and_extra_body(
    client: TestClient, fake_engine: FakeEngine
) -> None:
    top = {"prompt": "Quarterly numbers.", "temperature": "0.3", "hotwords": "Kubernetes"}
    before = fake_engine.calls
    assert post(client, {"model": "whisper-1", **top}).status_code == 200
    first = request_options(fake_engine, before)[0]
    assert (first.prompt, first.temperature, first.hotwords) == ("Quarterly numbers.", (0.3,), "Kubernetes")

    extra = {"prompt": "Board meeting.", "temperature": 0.6, "hotwords": "Grafana"}
    before = fake_engine.calls
    r = post(client, {"model": "whisper-1", **top, "extra_body": json.dumps(extra)})
    assert r.status_code == 200
    first = request_options(fake_engine, before)[0]
    assert (first.prompt, first.temperature, first.hotwords) == ("Board meeting.", (0.6,), "Grafana")

    before = fake_engine.calls
    assert post(client, {"model": "whisper-1"}).status_code == 200
    first = request_options(fake_engine, before)[0]
    assert (first.prompt, first.hotwords) == (None, None) and len(first.temperature) > 1  # fallback
