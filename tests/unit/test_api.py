"""The HTTP contract on the fake engine: fields, encodings, errors, streaming, auth, limits."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.support.audiogen import pcm_bytes, silence, speechlike, wav_bytes, white_noise
from tests.support.fakes import FakeEngine
from tests.support.harness import MakeClient, sse_events

URL = "/v1/audio/transcriptions"


def speech_wav(pauses_s: tuple[float, ...] = (1.0, 0.4, 1.2)) -> bytes:
    """Speech-like bursts of 1.5 s separated by the given pauses."""
    parts = [silence(0.5)]
    for pause in pauses_s:
        parts += [speechlike(1.5), silence(pause)]
    parts += [speechlike(1.5), silence(0.5)]
    return wav_bytes(np.concatenate(parts))


def post(client: TestClient, data: dict[str, Any], audio: bytes | None = None, **kw: Any) -> Any:
    files = {"file": ("a.wav", audio if audio is not None else speech_wav(), "audio/wav")}
    return client.post(URL, data=data, files=files, **kw)


def assert_error(response: Any, status: int, mentions: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["text"] is None and body["confidence"] is None
    assert mentions.lower() in body["error"].lower()


def test_batch_json_envelope(client: TestClient) -> None:
    r = post(client, {"model": "Azure/AI-Transcription"})
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and body["error"] is None
    assert body["text"].startswith("w0")
    assert 0 < body["confidence"] <= 1


def test_both_paths_and_aliases(client: TestClient) -> None:
    texts = {
        post(client, {"model": m}).json()["text"] for m in ("whisper-1", "tiny.en", "Azure/AI-Transcription")
    }
    texts.add(
        client.post(
            "/inference/audio/transcriptions",
            data={"model": "whisper-1"},
            files={"file": ("a.wav", speech_wav(), "audio/wav")},
        ).json()["text"]
    )
    assert len(texts) == 1 and texts != {""}


def test_text_format(client: TestClient) -> None:
    r = post(client, {"model": "whisper-1", "response_format": "text"})
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.strip().startswith("w0")


def test_text_format_stays_json_for_the_ai_refinery_sdk(client: TestClient) -> None:
    """Its parser calls .json() on every answer; it identifies itself with an sdk_version header."""
    r = post(client, {"model": "whisper-1", "response_format": "text"}, headers={"sdk_version": "1.33.2"})
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["text"].startswith("w0")


def test_extra_body_overrides_top_level_fields(client: TestClient) -> None:
    r = post(
        client,
        {
            "model": "whisper-1",
            "response_format": "json",
            "extra_body": json.dumps({"response_format": "text"}),
        },
    )
    assert r.headers["content-type"].startswith("text/plain")
    r = post(client, {"model": "nope", "extra_body": json.dumps({"model": "whisper-1"})})
    assert r.status_code == 200


def test_silence_gives_empty_text_without_running_the_model(
    client: TestClient, fake_engine: FakeEngine
) -> None:
    calls = fake_engine.calls  # the warm-up at startup
    r = post(client, {"model": "whisper-1"}, wav_bytes(silence(3.0)))
    assert r.status_code == 200 and r.json()["text"] == "" and r.json()["confidence"] is None
    assert fake_engine.calls == calls


@pytest.mark.parametrize("stream_value", ["True", "true", "1", "yes"])
def test_stream_deltas_then_done_then_done_marker(client: TestClient, stream_value: str) -> None:
    r = post(client, {"model": "whisper-1", "stream": stream_value})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    done = events[-2]
    deltas = events[:-2]
    assert done["type"] == "transcript.text.done"
    assert len(deltas) >= 2 and all(d["type"] == "transcript.text.delta" for d in deltas)
    assert all(d["delta"] == d["text"] for d in deltas)
    assert "".join(d["delta"] for d in deltas) == done["text"]
    assert done["confidence"] is not None
    offsets = [d["offset"] for d in deltas]
    assert offsets == sorted(offsets)


def test_silence_duration_controls_the_number_of_deltas(client: TestClient) -> None:
    audio = speech_wav((0.4, 0.8, 1.2, 0.4))

    def count(silence_ms: int) -> int:
        strategy = json.dumps(
            {"type": "server_vad", "silence_duration_ms": silence_ms, "prefix_padding_ms": 0}
        )
        r = post(client, {"model": "whisper-1", "stream": "true", "chunking_strategy": strategy}, audio)
        return sum(1 for e in sse_events(r.text) if isinstance(e, dict) and e["type"].endswith("delta"))

    assert count(200) > count(700) > count(1500) >= 1


def test_openai_bracket_encoding(client: TestClient) -> None:
    fields: dict[str, Any] = {
        "model": "whisper-1",
        "chunking_strategy[type]": "server_vad",
        "chunking_strategy[prefix_padding_ms]": "0",
        "chunking_strategy[silence_duration_ms]": "200",
        "include[]": ["logprobs", "confidence"],
        "timestamp_granularities[]": ["segment"],
        "stream": "false",
        "language": "en",
    }
    r = post(client, fields)
    assert r.status_code == 200 and r.json()["text"]
    fields["chunking_strategy[silence_duration_ms]"] = "99999"
    assert_error(post(client, fields), 400, "chunking_strategy.silence_duration_ms")


def test_raw_pcm_upload_labelled_wav(client: TestClient) -> None:
    audio = np.concatenate([silence(0.5), speechlike(1.5), silence(0.5)])
    r = post(client, {"model": "whisper-1"}, pcm_bytes(audio))
    assert r.status_code == 200 and r.json()["text"]


@pytest.mark.parametrize(
    ("fields", "status", "mentions"),
    [
        ({}, 400, "model"),
        ({"model": "no-such-model"}, 404, "no-such-model"),
        (
            {"model": "whisper-1", "chunking_strategy": '{"type": "server_vad", "prefix_padding_ms": 5001}'},
            400,
            "prefix_padding_ms",
        ),
        (
            {"model": "whisper-1", "chunking_strategy": '{"type": "server_vad", "silence_duration_ms": "x"}'},
            400,
            "silence_duration_ms",
        ),
        (
            {"model": "whisper-1", "chunking_strategy": '{"type": "server_vad", "threshold": 1.5}'},
            400,
            "threshold",
        ),
        ({"model": "whisper-1", "chunking_strategy": "sometimes"}, 400, "chunking_strategy"),
        ({"model": "whisper-1", "response_format": "docx"}, 400, "response_format"),
        ({"model": "whisper-1", "stream": "perhaps"}, 400, "stream"),
        ({"model": "whisper-1", "timeout": "-3"}, 400, "timeout"),
        ({"model": "whisper-1", "timeout": "soon"}, 400, "timeout"),
        ({"model": "whisper-1", "extra_body": "{not json"}, 400, "extra_body"),
        ({"model": "whisper-1", "extra_body": "[1]"}, 400, "extra_body"),
        ({"model": "whisper-1", "language": "fr-FR"}, 400, "english-only"),
        ({"model": "whisper-1", "language": "xx-YY"}, 400, "language"),
    ],
)
def test_bad_fields(client: TestClient, fields: dict[str, str], status: int, mentions: str) -> None:
    assert_error(post(client, fields), status, mentions)


def test_bad_files(client: TestClient) -> None:
    assert_error(client.post(URL, data={"model": "whisper-1"}), 400, "file")
    assert_error(post(client, {"model": "whisper-1"}, b""), 400, "empty")
    assert_error(
        post(client, {"model": "whisper-1"}, b"just some text, certainly not audio\n" * 50), 415, "text"
    )
    broken = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40))
    assert_error(post(client, {"model": "whisper-1"}, broken), 415, "decode")
    assert_error(client.post(URL, json={"model": "whisper-1"}), 400, "multipart")


def test_upload_limit(make_client: MakeClient) -> None:
    client = make_client(max_upload_mb=0.5)
    big = wav_bytes(white_noise(40.0))  # ~1.3 MB
    assert_error(post(client, {"model": "whisper-1"}, big), 413, "limit")
    assert post(client, {"model": "whisper-1"}).status_code == 200


def test_unknown_route_and_method_use_the_envelope(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing"), 404, "not found")
    assert_error(client.get(URL), 405, "method")


def test_api_keys(make_client: MakeClient) -> None:
    client = make_client(api_keys=("k1",))
    assert_error(post(client, {"model": "whisper-1"}), 401, "api key")
    assert_error(post(client, {"model": "whisper-1"}, headers={"Authorization": "Bearer k2"}), 401, "api key")
    assert post(client, {"model": "whisper-1"}, headers={"Authorization": "Bearer k1"}).status_code == 200
    assert client.post("/authentication/validate").status_code == 401
    r = client.post("/authentication/validate", headers={"Authorization": "Bearer k1"})
    assert r.status_code == 200 and r.json()["organization_id"]


def test_health_and_models(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    models = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in models if m["alias_of"] is None] == ["tiny.en"]
    assert "whisper-1" in models[0]["aliases"]
    # Each alias is listed as a model of its own (as OpenAI lists its ids), naming its model.
    aliases = {m["id"]: m["alias_of"] for m in models if m["alias_of"] is not None}
    assert aliases == dict.fromkeys(models[0]["aliases"], "tiny.en")
    card = client.get("/v1/models/whisper-1").json()
    assert (card["id"], card["alias_of"], card["default"]) == ("whisper-1", "tiny.en", False)
    assert_error(client.get("/v1/models/..%2F..%2Fetc%2Fpasswd"), 404, "does not exist")


def test_timeout_batch_and_stream(make_client: MakeClient) -> None:
    client = make_client(FakeEngine(delay_s=0.6))
    assert_error(post(client, {"model": "whisper-1", "timeout": "0.3"}), 504, "timeout")
    events = sse_events(post(client, {"model": "whisper-1", "timeout": "0.3", "stream": "true"}).text)
    assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "timeout"
    assert all(e != "[DONE]" and e["type"] != "transcript.text.done" for e in events)
    assert post(client, {"model": "whisper-1", "timeout": "None"}).status_code == 200


def test_full_line_gets_503(make_client: MakeClient) -> None:
    engine = FakeEngine(delay_s=4.0)
    client = make_client(engine, max_concurrent_requests=1, max_queued_requests=0)
    statuses: list[int] = []

    def call() -> None:
        statuses.append(post(client, {"model": "whisper-1"}).status_code)

    warmup_calls = engine.calls
    first = threading.Thread(target=call)
    first.start()
    for _ in range(100):  # wait (bounded) until the first request is running
        if engine.calls > warmup_calls:
            break
        threading.Event().wait(0.05)
    second = post(client, {"model": "whisper-1"})
    first.join(timeout=30)
    assert_error(second, 503, "busy")
    assert statuses == [200]
