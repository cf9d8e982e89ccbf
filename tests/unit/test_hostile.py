"""Hostile and careless fields: 400 with the envelope (never a 500 or a dropped connection), bounded
echoes, authentication that cannot crash, and the audio budget."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from app.transcription.params import MAX_PROMPT_CHARS
from tests.support.audiogen import speechlike, wav_bytes
from tests.support.harness import MakeClient

URL = "/v1/audio/transcriptions"
AUDIO = wav_bytes(speechlike(1.5))


def post(client: TestClient, fields: dict[str, str], **kw: object) -> object:
    return client.post(URL, data={"model": "whisper-1", **fields}, files={"file": ("a.wav", AUDIO)}, **kw)  # type: ignore[arg-type]


def deep(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


HOSTILE = {
    "extra_body-deep": {"extra_body": '{"a": ' + deep(5000) + "}"},
    "chunking-deep": {"chunking_strategy": '{"type": "server_vad", "x": ' + deep(3000, "{", "}") + "}"},
    "include-deep": {"include": deep(4000)},
    "granularities-deep": {"timestamp_granularities": deep(5000)},
    "long-number": {"extra_body": '{"temperature": 1' + "0" * 5000 + "}"},
    "long-timeout": {"timeout": "9" * 5000},
    "long-rate": {"sample_rate": "1" * 5000},
    "nan-temperature": {"temperature": "nan"},
    "prompt-900k": {"prompt": "word " * 180_000},
    "prompt-over-cap": {"prompt": "x" * (MAX_PROMPT_CHARS + 1)},
    "hotwords-5000": {"hotwords": "h" * 5000},
    "huge-extra-body": {"extra_body": json.dumps({"prompt": "y" * 60_000})},
    "many-includes": {"include": json.dumps(["logprobs"] * 100)},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_fields_get_400_with_the_envelope(client: TestClient, name: str) -> None:
    r = post(client, HOSTILE[name])
    assert r.status_code == 400, (name, r.status_code, r.text[:300])  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["success"] is False and body["error"] and len(body["error"]) < 400, body


def test_a_prompt_up_to_the_cap_is_used(client: TestClient, fake_engine: object) -> None:
    r = post(client, {"prompt": "p" * MAX_PROMPT_CHARS, "hotwords": "h" * MAX_PROMPT_CHARS})
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xe4\xf6\xfc-key", b"\xff\xfe", b"Basic dXNlcjpwYXNz", b"Bearer", b"Bearer  ", b"k1"],
)
def test_bad_authorization_is_401_with_a_challenge(make_client: MakeClient, authorization: bytes) -> None:
    client = make_client(api_keys=("k1",))
    r = post(client, {}, headers={"Authorization": authorization})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text  # type: ignore[attr-defined]
    assert r.json()["code"] == "unauthorized"  # type: ignore[attr-defined]
    assert post(client, {}, headers={"Authorization": "Bearer k1"}).status_code == 200  # type: ignore[attr-defined]


def test_head_health_and_bounded_echoes(client: TestClient) -> None:
    assert client.head("/health").status_code == 200
    name = "m" * 100_000
    for r in (post(client, {"model": name}), client.get(f"/v1/models/{name[:20_000]}")):
        assert r.status_code in (400, 404) and len(r.text) < 1000, (r.status_code, len(r.text))  # type: ignore[attr-defined]


def test_the_audio_budget_refuses_what_it_cannot_hold(make_client: MakeClient) -> None:
    client = make_client(audio_budget_mb=1.0)  # 1 MB: ~32 s of 16 kHz 16-bit audio
    admission = client.app.state.admission  # type: ignore[attr-defined]
    r = client.post(URL, data={"model": "whisper-1"}, files={"file": ("a.wav", wav_bytes(speechlike(60.0)))})
    assert r.status_code == 503 and r.headers["retry-after"].isdigit(), r.text
    assert admission.held_bytes == 0 and admission.active == 0
    assert post(client, {}).status_code == 200  # type: ignore[attr-defined]
    assert admission.held_bytes == 0 and admission.active == 0
