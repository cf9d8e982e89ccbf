"""Today's openai-python (3.63) and the AI Refinery SDK against the real server: OpenAI's model ids,
``usage`` and ``languages`` in the json body, ``keywords`` (and their bounds), and
``gpt-4o-transcribe-diarize`` answering with speakers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from app.transcription.keywords import MAX_KEYWORD_CHARS, MAX_KEYWORDS
from tests.support.evalset import Clip, clips, normalize, wer
from tests.support.harness import LiveServer
from tests.support.sdk_clients import run_client, sdk_env
from tests.system.test_real_realtime import COMPLETED, run_realtime_client

JFK = next(c for c in clips("short") if c.id.startswith("jfk"))
# A name tiny.en mishears without help (bench/keywords.py found it): "Hester Prynne".
NAMED = next(c for c in clips("short") if c.id == "ls-test-clean-1221-135766-0002")
KEYWORD, SPOKEN = "Prynne", "prynne"


def openai(server: LiveServer, clip: Clip, *args: str) -> dict[str, Any]:
    out = run_client(
        "air-current", "openai_client.py", [str(clip.path), "--client", "sync", *args], sdk_env(server)
    )
    call: dict[str, Any] = out["calls"]["sync"]
    return call


@pytest.mark.parametrize("model", ["gpt-transcribe", "gpt-4o-mini-transcribe-2025-12-15"])
def test_openai_model_ids_with_usage_and_the_detected_language(live_server: LiveServer, model: str) -> None:
    call = openai(live_server, JFK, "--model", model)
    assert call["ok"], call
    result = call["result"]
    assert wer([JFK.text], [result["text"]]) < 0.2
    assert result["usage"]["type"] == "duration"
    assert result["usage"]["seconds"] == pytest.approx(JFK.duration_s, abs=0.05)
    assert result["languages"] == [{"code": "en"}]
    declared = openai(live_server, JFK, "--model", model, "--language", "en")
    assert declared["ok"] and declared["result"]["languages"] is None, declared
    assert declared["result"]["usage"] == result["usage"]


def test_openai_python_lists_and_retrieves_the_model_ids(live_server: LiveServer) -> None:
    """``models.list()`` / ``models.retrieve()`` through the SDK's own parsing (its --list-models)."""
    out = run_client(
        "air-current", "openai_client.py", [str(JFK.path), "--list-models"], sdk_env(live_server)
    )
    listed = out["models"]
    for name in (
        "gpt-transcribe",
        "gpt-4o-transcribe",
        "gpt-4o-mini-transcribe",
        "gpt-4o-transcribe-diarize",
    ):
        assert listed[name]["alias_of"] == "tiny.en", listed
    assert out["retrieved"]["id"] == "gpt-transcribe"


def test_keywords_recover_a_name_the_model_misses(live_server: LiveServer) -> None:
    plain = openai(live_server, NAMED, "--model", "gpt-transcribe", "--language", "en")
    assert plain["ok"], plain
    assert SPOKEN not in normalize(plain["result"]["text"]).split(), "the model now hears it unaided"
    helped = openai(live_server, NAMED, "--model", "gpt-transcribe", "--language", "en", "--keyword", KEYWORD)
    assert helped["ok"], helped
    assert SPOKEN in normalize(helped["result"]["text"]).split(), helped["result"]["text"]
    assert wer([NAMED.text], [helped["result"]["text"]]) < wer([NAMED.text], [plain["result"]["text"]])


def test_keywords_in_a_stream_and_through_the_ai_refinery_sdk(live_server: LiveServer) -> None:
    stream = openai(live_server, NAMED, "--language", "en", "--stream", "--keyword", KEYWORD)
    assert stream["ok"] and stream["events"][-1]["type"] == "transcript.text.done", stream
    assert SPOKEN in normalize(stream["events"][-1]["text"]).split()
    out = run_client(
        "air-current",
        "air_current.py",
        [str(NAMED.path), "--client", "both", "--extra-body", json.dumps({"keywords": [KEYWORD]})],
        sdk_env(live_server),
    )
    for call in out["calls"].values():
        assert call["ok"], out
        assert SPOKEN in normalize(call["result"]["text"]).split(), call["result"]["text"]


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--create-args", json.dumps({"keywords": [f"w{i}" for i in range(MAX_KEYWORDS + 1)]})], "at most"),
        (["--keyword", "x" * (MAX_KEYWORD_CHARS + 1)], "characters"),
        (["--extra-body", json.dumps({"keywords": {"not": "a list"}})], "valid list"),
    ],
    ids=["too-many", "too-long", "wrong-type"],
)
def test_bad_keywords_are_a_400_the_sdks_raise(
    live_server: LiveServer, args: list[str], mentions: str
) -> None:
    call = openai(live_server, JFK, *args)
    assert not call["ok"] and call["error"]["status"] == 400, call
    body = call["error"]["body"]
    assert "keywords" in json.dumps(body) and mentions in json.dumps(body), body
    out = run_client(
        "air-current",
        "air_current.py",
        [str(JFK.path), "--client", "sync", "--extra-body", json.dumps({"keywords": 5})],
        sdk_env(live_server),
    )
    assert not out["calls"]["sync"]["ok"] and "400" in json.dumps(out["calls"]["sync"]["error"]), out


def test_the_diarize_model_answers_with_speakers(live_server: LiveServer) -> None:
    args = ["--language", "en", "--response-format", "diarized_json"]
    call = openai(live_server, JFK, "--model", "gpt-4o-transcribe-diarize", *args)
    assert call["ok"], call
    # (How many voices the diarizer hears in this one-speaker clip is the diarization tests' concern.)
    assert call["result"]["segments"] and all(s["speaker"].isalpha() for s in call["result"]["segments"])
    assert call["result"]["usage"]["seconds"] == pytest.approx(JFK.duration_s, abs=0.05)
    verbose = ["--language", "en", "--response-format", "verbose_json"]
    diarized = openai(live_server, JFK, "--model", "gpt-4o-transcribe-diarize", *verbose)
    plain = openai(live_server, JFK, "--model", "gpt-transcribe", *verbose)
    assert diarized["ok"] and plain["ok"]
    assert all(s["speaker_id"].startswith("Guest-") for s in diarized["result"]["segments"]), diarized
    assert all("speaker_id" not in s for s in plain["result"]["segments"])
    assert diarized["result"]["usage"]["seconds"] == pytest.approx(JFK.duration_s, abs=0.05)


def test_a_live_session_with_keywords(live_server: LiveServer, tmp_path: Path) -> None:
    """openai-python's realtime client: ``audio.input.transcription.keywords`` echoed and heard."""
    samples, rate = sf.read(NAMED.path, dtype="int16")
    sf.write(tmp_path / "named16.wav", samples, rate, subtype="PCM_16")
    args = ["--speed", "0", "--manual", "--model", "gpt-transcribe", "--keyword", KEYWORD]
    events = [e["event"] for e in run_realtime_client(live_server, tmp_path / "named16.wav", *args)["events"]]
    updated = next(e for e in events if e["type"] == "session.updated")
    assert updated["session"]["audio"]["input"]["transcription"]["keywords"] == [KEYWORD]
    done = next(e for e in events if e["type"] == COMPLETED)
    assert SPOKEN in normalize(done["transcript"]).split(), done["transcript"]


@pytest.mark.parametrize(
    ("languages", "heard"), [(["en", "de"], {"de"}), (["de", "fr"], {"de"}), (["fr", "es"], {"fr", "es"})]
)
def test_openai_languages_restrict_detection(
    live_server: LiveServer, languages: list[str], heard: set[str]
) -> None:
    """openai-python's ``languages``: detection chooses only among them (German speech offered only
    French and Spanish comes back as one of those), English among them or not."""
    german = next(c for c in clips("multilingual") if c.raw["language"] == "de")
    call = openai(live_server, german, "--create-args", json.dumps({"languages": languages}))
    assert call["ok"], call
    assert [entry["code"] for entry in call["result"]["languages"]] in [[code] for code in heard], call
    if heard == {"de"}:
        assert wer([german.text], [call["result"]["text"]]) < 0.5
