"""Speakers through the real SDKs and the real server: the AI Refinery SDK parses verbose_json with
``speaker_id`` / ``speakers`` (asked for in ``extra_body``), openai-python parses ``diarized_json``
and its stream's ``transcript.text.segment`` events."""

from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path

import soundfile as sf

from tests.support.diarization_sets import conversation
from tests.support.harness import LiveServer
from tests.support.sdk_clients import run_client, sdk_env


@cache
def two_speaker_wav(folder: Path) -> Path:
    """A 2-speaker conversation of four turns (~40 s) joined from the eval set's short clips."""
    rec = conversation(2, 2, turns=4)
    path = folder / "conversation.wav"
    sf.write(path, rec.samples, 16000, subtype="PCM_16")
    return path


def test_air_sdk_verbose_json_with_speakers(live_server: LiveServer) -> None:
    wav = two_speaker_wav(live_server.log_path.parent)
    args = [str(wav), "--client", "sync", "--response-format", "verbose_json"]
    args += ["--extra-body", '{"diarize": true}']
    out = run_client("air-current", "air_current.py", args, sdk_env(live_server))
    call = out["calls"]["sync"]
    assert call["ok"], out
    result = call["result"]
    assert result["speakers"] == ["Guest-1", "Guest-2"]
    ids = [s["speaker_id"] for s in result["segments"]]
    assert set(ids) == {"Guest-1", "Guest-2"} and ids[0] == "Guest-1"
    assert sum(a != b for a, b in itertools.pairwise(ids)) >= 3  # four turns


def test_openai_diarized_json_batch_and_stream(live_server: LiveServer) -> None:
    wav = two_speaker_wav(live_server.log_path.parent)
    args = [str(wav), "--client", "sync", "--response-format", "diarized_json"]
    batch = run_client("air-current", "openai_client.py", args, sdk_env(live_server))
    call = batch["calls"]["sync"]
    assert call["ok"], batch
    segments = call["result"]["segments"]
    assert {s["speaker"] for s in segments} == {"A", "B"}
    assert " ".join(s["text"] for s in segments) == call["result"]["text"]
    stream = run_client("air-current", "openai_client.py", [*args, "--stream"], sdk_env(live_server))
    call = stream["calls"]["sync"]
    assert call["ok"], stream
    types = [e["type"] for e in call["events"]]
    assert types[0] == "transcript.text.delta" and types[-1] == "transcript.text.done"
    streamed = [e for e in call["events"] if e["type"] == "transcript.text.segment"]
    assert {s["speaker"] for s in streamed} == {"A", "B"}
    assert " ".join(s["text"] for s in streamed) == call["events"][-1]["text"]
