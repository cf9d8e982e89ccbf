"""Today's OpenAI fields on the fake engine: model ids as aliases, ``usage`` and ``languages`` in the
json body, ``keywords`` (both encodings, extra_body, live sessions) and their bounds."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import OPENAI_TRANSCRIBE_MODELS, ModelSpec, Settings
from app.models.registry import ModelRegistry
from app.transcription.keywords import MAX_KEYWORD_CHARS, MAX_KEYWORDS
from tests.support.audiogen import silence, speechlike, wav_bytes
from tests.support.fakes import FakeEngine
from tests.support.harness import MakeClient
from tests.unit.test_api import assert_error, post, speech_wav
from tests.unit.test_realtime import COMPLETED, URL, append, until, update


def test_openai_model_ids_serve_the_default_model_and_are_listed_as_models(make_client: MakeClient) -> None:
    # The default models (base: the multilingual partner that detection runs on, a fake too).
    client = make_client(models=Settings().models, others={"base": FakeEngine(english_only=False)})
    texts = {post(client, {"model": m}).json()["text"] for m in (*OPENAI_TRANSCRIBE_MODELS, "tiny.en")}
    assert len(texts) == 1 and texts != {""}
    cards = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    for name in (*OPENAI_TRANSCRIBE_MODELS, "gpt-4o-transcribe-diarize"):
        assert cards[name]["alias_of"] == "tiny.en" and cards[name]["object"] == "model"
        assert client.get(f"/v1/models/{name}").json() == cards[name]
    assert cards["gpt-4o-transcribe-diarize"]["diarizes"] and not cards["gpt-transcribe"]["diarizes"]
    assert cards["tiny.en"]["alias_of"] is None and cards["tiny.en"]["default"]
    assert "gpt-4o-transcribe-diarize" in cards["tiny.en"]["aliases"]


def test_diarize_aliases_are_configurable() -> None:
    settings = Settings(models={"m": ModelSpec(aliases=("plain",), diarize_aliases=("who-spoke",))})
    assert settings.model_names() == {"m": "m", "plain": "m", "who-spoke": "m"}
    registry = ModelRegistry(settings, factory=lambda *_: FakeEngine())
    assert registry.diarizes("who-spoke") and not registry.diarizes("plain") and not registry.diarizes("m")
    assert (
        registry.implied_fields("who-spoke") == {"diarize": True} and registry.implied_fields("plain") == {}
    )


def test_json_body_has_usage_and_the_detected_language_only_when_none_was_given(client: TestClient) -> None:
    audio = speech_wav()
    seconds = (len(audio) - 44) / 2 / 16000  # 16 kHz mono 16-bit WAV
    detected = post(client, {"model": "whisper-1"}, audio).json()
    assert detected["usage"] == {"type": "duration", "seconds": pytest.approx(seconds, abs=0.01)}
    assert detected["languages"] == [{"code": "en"}]
    assert detected["success"] is True and detected["error"] is None and detected["text"]
    declared = post(client, {"model": "whisper-1", "language": "en-US"}, audio).json()
    assert "languages" not in declared and declared["usage"]["seconds"] == detected["usage"]["seconds"]
    one = post(client, {"model": "whisper-1", "languages[]": ["en"]}, audio).json()  # declares it
    assert "languages" not in one and one["text"] == detected["text"]
    # No speech: nothing could be detected (OpenAI's empty list).
    quiet = post(client, {"model": "whisper-1"}, wav_bytes(silence(2.0))).json()
    assert quiet["text"] == "" and quiet["languages"] == []
    verbose = post(client, {"model": "whisper-1", "response_format": "verbose_json"}, audio).json()
    assert verbose["usage"] == detected["usage"] and "languages" not in verbose


def _hotwords(engine: FakeEngine) -> set[str | None]:
    return {o.hotwords for o in engine.options}


@pytest.mark.parametrize(
    "fields",
    [
        {"keywords[]": ["Dashwood", "Hester Prynne"]},  # openai-python
        {"keywords": '["Dashwood", "Hester Prynne"]'},  # a JSON string (curl -F)
        {"extra_body": json.dumps({"keywords": ["Dashwood", "Hester Prynne"]})},  # AI Refinery SDK
    ],
)
def test_keywords_reach_the_decoder_in_every_encoding(
    make_client: MakeClient, fields: dict[str, Any]
) -> None:
    engine = FakeEngine()
    client = make_client(engine)
    r = post(client, {"model": "whisper-1", **fields})
    assert r.status_code == 200, r.text
    (hotwords,) = _hotwords(engine)
    assert hotwords is not None and "Dashwood" in hotwords and "Hester Prynne" in hotwords


def test_keywords_and_hotwords_together_and_in_a_stream(make_client: MakeClient) -> None:
    engine = FakeEngine()
    client = make_client(engine)
    r = post(
        client,
        {"model": "whisper-1", "keywords[]": ["Marianne"], "hotwords": "Norland Park", "stream": "true"},
    )
    assert r.status_code == 200 and "transcript.text.done" in r.text
    (hotwords,) = _hotwords(engine)
    assert hotwords is not None and "Marianne" in hotwords and "Norland Park" in hotwords
    engine.options.clear()
    assert post(client, {"model": "whisper-1"}).status_code == 200
    assert _hotwords(engine) == {None}  # nothing given: no prompt


@pytest.mark.parametrize(
    ("keywords", "mentions"),
    [
        ([f"word{i}" for i in range(MAX_KEYWORDS + 1)], f"at most {MAX_KEYWORDS}"),
        (["x" * (MAX_KEYWORD_CHARS + 1)], f"at most {MAX_KEYWORD_CHARS} characters"),
        ([f"{'longkeyword' * 5}{i}" for i in range(20)], "fit Whisper's prompt"),
        ([""], "at least 1 character"),
        (5, "valid list"),
        ([1, 2], "valid string"),
        ({"a": "b"}, "valid list"),
    ],
)
def test_bad_keywords_get_400(client: TestClient, keywords: Any, mentions: str) -> None:
    r = post(client, {"model": "whisper-1", "extra_body": json.dumps({"keywords": keywords})})
    assert_error(r, 400, mentions)
    assert r.json()["param"] == "keywords" and r.json()["code"]


def test_live_session_keywords_are_echoed_and_bias_its_decodes(make_client: MakeClient) -> None:
    engine = FakeEngine()
    client = make_client(engine, models={"tiny.en": ModelSpec(aliases=("gpt-transcribe",))})
    with client.websocket_connect(URL) as ws:
        assert ws.receive_json()["type"] == "session.created"
        updated = update(ws, transcription={"model": "gpt-transcribe", "keywords": ["Dashwood", "Norland"]})
        transcription = updated["session"]["audio"]["input"]["transcription"]
        assert updated["type"] == "session.updated" and transcription["keywords"] == ["Dashwood", "Norland"]
        append(ws, np.concatenate([silence(0.6), speechlike(2.0), silence(1.0)]))
        assert until(ws, COMPLETED)[-1]["transcript"]
        bad = update(ws, transcription={"keywords": ["x" * (MAX_KEYWORD_CHARS + 1)]})
        assert bad["type"] == "error" and "keywords" in bad["error"]["message"]
    hotwords = _hotwords(engine)
    assert hotwords and all(h is not None and "Dashwood" in h and "Norland" in h for h in hotwords)
