"""Speakers through the real SDKs and the real server: the AI Refinery SDK parses verbose_json with
``speaker_id`` / ``speakers`` (asked for in ``extra_body``), openai-python parses ``diarized_json``
and its stream's ``transcript.text.segment`` events."""

from __future__ import annotations

import itertools
import json
from functools import cache
from pathlib import Path
from typing import Any

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


@cache
def known_speaker_files(folder: Path) -> tuple[Path, list[tuple[str, Path]]]:
    """A two-reader conversation and each reader's reference (cut from another of their clips),
    as WAV files, named by reader."""
    from tests.integration.test_known_speakers import case

    c = case()
    call = folder / "known-call.wav"
    sf.write(call, c.recording.samples, 16000, subtype="PCM_16")
    refs = []
    for i, (name, audio) in enumerate(zip(c.names, c.references, strict=True)):
        path = folder / f"reference-{i}.wav"
        sf.write(path, audio, 16000, subtype="PCM_16")
        refs.append((name, path))
    return call, refs


def named_right(segments: list[dict[str, Any]]) -> float:
    """The share of the segments' time under the reader who speaks most there."""
    from tests.integration.test_known_speakers import truth

    total = sum(float(s["end"] - s["start"]) for s in segments)
    right = sum(float(s["end"] - s["start"]) for s in segments if s["speaker"] == truth(s["start"], s["end"]))
    return right / total


def test_openai_known_speakers_diarized_json(live_server: LiveServer) -> None:
    """openai-python 3.63 sends known_speaker_names[] / known_speaker_references[] (data URLs of
    ~200-290 KB each: past the form's old 64 KB part limit)."""
    call_wav, refs = known_speaker_files(live_server.log_path.parent)
    args = [str(call_wav), "--client", "sync", "--response-format", "diarized_json", "--model", "whisper-1"]
    for name, path in refs:
        args += ["--known-speaker", f"{name}={path}"]
    out = run_client("air-current", "openai_client.py", args, sdk_env(live_server))
    call = out["calls"]["sync"]
    assert call["ok"], out
    assert tuple(map(int, out["sdk_version"].split(".")[:2])) >= (3, 63)  # has known_speaker_*
    segments = call["result"]["segments"]
    assert {s["speaker"] for s in segments} == {name for name, _ in refs}
    assert named_right(segments) >= 0.9


def test_air_sdk_known_speakers_through_extra_body(live_server: LiveServer) -> None:
    """The references travel in the SDK's one ``extra_body`` JSON part (~500 KB)."""
    call_wav, refs = known_speaker_files(live_server.log_path.parent)
    from tests.clients._common import data_url

    extra = {
        "known_speaker_names": [name for name, _ in refs],
        "known_speaker_references": [data_url(str(path)) for _, path in refs],
    }
    body = live_server.log_path.parent / "extra_body.json"
    body.write_text(json.dumps(extra))
    args = [
        str(call_wav),
        "--client",
        "sync",
        "--response-format",
        "verbose_json",
        "--extra-body",
        f"@{body}",
    ]
    out = run_client("air-current", "air_current.py", args, sdk_env(live_server))
    call = out["calls"]["sync"]
    assert call["ok"], out
    result = call["result"]
    # AI Refinery's ids stay (its schema allows only Guest-n; the SDK drops the ``speaker`` names).
    assert result["speakers"] == ["Guest-1", "Guest-2"]
    ids = [s["speaker_id"] for s in result["segments"]]
    assert sum(a != b for a, b in itertools.pairwise(ids)) >= 3  # four turns
