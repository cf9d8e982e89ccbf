"""The real client SDKs, in their own virtualenvs, against the real server on 127.0.0.1.

The AI Refinery SDK (current release and the seed-era 1.14.2 running the seed's four examples as
written) and openai-python. The venvs are built on first use (tests/support/client_venvs.py); a missing
Python 3.12/3.13 fails these tests with a clear message instead of skipping them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.evalset import clips, wer
from tests.support.harness import LiveServer
from tests.support.sdk_clients import run_client, sdk_env

JFK = next(c for c in clips("short") if c.id.startswith("jfk"))
PCM = next(c for c in clips("format-variant") if c.path.suffix == ".pcm")


def check_stream(events: list[dict[str, Any]], reference: str) -> None:
    types = [e.get("type") for e in events]
    assert types.count("transcript.text.done") == 1 and types[-1] == "transcript.text.done", types
    deltas = [e for e in events if e.get("type") == "transcript.text.delta"]
    assert deltas
    done_text = events[-1]["text"]
    joined = "".join(d.get("delta") or d.get("text") or "" for d in deltas)
    assert joined == done_text
    assert wer([reference], [done_text]) < 0.2


def test_seed_examples_unchanged_on_sdk_1_14(live_server: LiveServer) -> None:
    out = run_client(
        "air-1.14",
        "seed_examples.py",
        [str(JFK.path)],
        {"AIREFINERY_ADDRESS": live_server.base_url, "ACCOUNT": "test", "API_KEY": live_server.api_key},
    )
    assert out["_returncode"] == 0, out
    assert out["sdk_version"] == "1.14.2"
    results = out["results"]
    for name in ("async_batch", "sync_batch"):
        assert results[name]["ok"], results[name]
        assert wer([JFK.text], [results[name]["text"]]) < 0.2
        assert results[name]["response"]["success"] is True
    for name in ("async_stream", "sync_stream"):
        assert results[name]["ok"], results[name]
        check_stream(results[name]["events"], JFK.text)


WORDS_AND_SEGMENTS = ["--timestamp-granularities", '["word", "segment"]']


def check_timeline(words: list[dict[str, Any]], segments: list[dict[str, Any]], duration_s: float) -> None:
    """Words and segments exist, run forward and lie inside the audio."""
    assert words and segments
    for items in (words, segments):
        starts = [x["start"] for x in items]
        assert starts == sorted(starts)
        assert all(0 <= x["start"] <= x["end"] <= duration_s + 0.01 for x in items)


@pytest.mark.parametrize("client", ["sync", "async"])
def test_current_air_sdk_batch_and_stream(live_server: LiveServer, client: str) -> None:
    """The sync client asks for verbose_json with words and segments (parsed into its
    TranscriptionVerbose) and for word/segment stream events; the async one keeps the defaults."""
    extras = client == "sync"
    args = [str(JFK.path), "--client", client]
    verbose = ["--response-format", "verbose_json", *WORDS_AND_SEGMENTS] if extras else []
    batch = run_client("air-current", "air_current.py", args + verbose, sdk_env(live_server))
    call = batch["calls"][client]
    assert call["ok"], batch
    result = call["result"]
    assert wer([JFK.text], [result["text"]]) < 0.2
    if extras:
        assert (result["task"], result["language"]) == ("transcribe", "en-US")
        assert abs(result["duration"] - JFK.duration_s) < 0.05
        check_timeline(result["words"], result["segments"], JFK.duration_s)
        assert all(
            w["segment"] < len(result["segments"]) and 0 <= w["confidence"] <= 1 for w in result["words"]
        )
    stream_args = args + ["--stream"] + (WORDS_AND_SEGMENTS if extras else [])
    stream = run_client("air-current", "air_current.py", stream_args, sdk_env(live_server))
    call = stream["calls"][client]
    assert call["ok"], stream
    assert not any("invalid payload" in line for line in call["printed"]), call["printed"]
    check_stream(call["events"], JFK.text)
    words = [e for e in call["events"] if e["type"] == "transcript.word"]
    segments = [e["segment"] for e in call["events"] if e["type"] == "transcript.segment"]
    if extras:
        check_timeline(words, segments, JFK.duration_s)
        assert " ".join(w["word"] for w in words) == call["events"][-1]["text"]
    else:
        assert not words and not segments


def test_current_air_sdk_raw_pcm_and_server_vad(live_server: LiveServer) -> None:
    strategy = json.dumps({"type": "server_vad", "prefix_padding_ms": 300, "silence_duration_ms": 500})
    out = run_client(
        "air-current",
        "air_current.py",
        [str(PCM.path), "--client", "sync", "--chunking-strategy", strategy],
        sdk_env(live_server),
    )
    assert out["calls"]["sync"]["ok"], out
    assert wer([PCM.text], [out["calls"]["sync"]["result"]["text"]]) < 0.2


def test_current_air_sdk_sees_http_errors(live_server: LiveServer) -> None:
    out = run_client(
        "air-current",
        "air_current.py",
        [str(JFK.path), "--client", "sync", "--model", "no-such-model"],
        sdk_env(live_server),
    )
    call = out["calls"]["sync"]
    assert not call["ok"]
    assert "404" in json.dumps(call["error"])


@pytest.mark.parametrize("stream", [False, True], ids=["batch", "stream"])
def test_openai_python(live_server: LiveServer, stream: bool) -> None:
    """Batch: verbose_json with words and segments; stream: token logprobs in every delta."""
    args = [str(JFK.path), "--client", "sync", "--language", "en"]
    if stream:
        args += ["--stream", "--include", "logprobs"]
    else:
        args += ["--response-format", "verbose_json", *WORDS_AND_SEGMENTS]
    out = run_client("air-current", "openai_client.py", args, sdk_env(live_server))
    call = out["calls"]["sync"]
    assert call["ok"], out
    if stream:
        check_stream(call["events"], JFK.text)
        deltas = [e for e in call["events"] if e["type"] == "transcript.text.delta"]
        for d in deltas:
            assert d["logprobs"], d
            assert "".join(lp["token"] for lp in d["logprobs"]).strip() == d["delta"].strip()
            assert all(
                lp["logprob"] <= 0 and bytes(lp["bytes"]).decode() == lp["token"] for lp in d["logprobs"]
            )
        done = call["events"][-1]
        assert [lp["token"] for lp in done["logprobs"]] == [
            lp["token"] for d in deltas for lp in d["logprobs"]
        ]
        assert done["usage"]["seconds"] == pytest.approx(JFK.duration_s, abs=0.05)
    else:
        result = call["result"]
        assert wer([JFK.text], [result["text"]]) < 0.2
        assert result["language"] == "en-US" and abs(result["duration"] - JFK.duration_s) < 0.05
        check_timeline(result["words"], result["segments"], JFK.duration_s)
        assert all(s["tokens"] and s["avg_logprob"] <= 0 for s in result["segments"])


def test_openai_python_raises_on_errors(live_server: LiveServer) -> None:
    out = run_client(
        "air-current",
        "openai_client.py",
        [str(JFK.path), "--client", "sync", "--model", "no-such-model"],
        sdk_env(live_server),
    )
    call = out["calls"]["sync"]
    assert not call["ok"] and "404" in json.dumps(call["error"])
