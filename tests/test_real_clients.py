"""The real client SDKs, in their own virtualenvs, against the real server on 127.0.0.1.

The AI Refinery SDK (current release and the seed-era 1.14.2 running the seed's four examples as
written) and openai-python. The venvs are built on first use (tests/client_venvs.py); a missing
Python 3.12/3.13 fails these tests with a clear message instead of skipping them.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from tests.client_venvs import ensure_client_python
from tests.conftest import REPO, LiveServer
from tests.evalset import clips, wer

CLIENTS = REPO / "tests" / "clients"
JFK = next(c for c in clips("short") if c.id.startswith("jfk"))
PCM = next(c for c in clips("format-variant") if c.path.suffix == ".pcm")


def run_client(venv: str, script: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    python = ensure_client_python(venv)
    proc = subprocess.run(
        [str(python), str(CLIENTS / script), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **env},
        cwd=REPO,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"{script} printed nothing:\n{proc.stderr[-4000:]}"
    out: dict[str, Any] = json.loads(lines[-1])
    out["_returncode"] = proc.returncode
    out["_stderr"] = proc.stderr[-4000:]
    return out


def sdk_env(server: LiveServer) -> dict[str, str]:
    return {"ASR_TEST_BASE_URL": server.base_url, "ASR_TEST_API_KEY": server.api_key}


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


@pytest.mark.parametrize("client", ["sync", "async"])
def test_current_air_sdk_batch_and_stream(live_server: LiveServer, client: str) -> None:
    batch = run_client(
        "air-current", "air_current.py", [str(JFK.path), "--client", client], sdk_env(live_server)
    )
    call = batch["calls"][client]
    assert call["ok"], batch
    assert wer([JFK.text], [call["result"]["text"]]) < 0.2
    stream = run_client(
        "air-current",
        "air_current.py",
        [str(JFK.path), "--client", client, "--stream"],
        sdk_env(live_server),
    )
    call = stream["calls"][client]
    assert call["ok"], stream
    assert not any("invalid payload" in line for line in call["printed"]), call["printed"]
    check_stream(call["events"], JFK.text)


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
    args = [str(JFK.path), "--client", "sync", "--language", "en"] + (["--stream"] if stream else [])
    out = run_client("air-current", "openai_client.py", args, sdk_env(live_server))
    call = out["calls"]["sync"]
    assert call["ok"], out
    if stream:
        check_stream(call["events"], JFK.text)
    else:
        assert wer([JFK.text], [call["result"]["text"]]) < 0.2


def test_openai_python_raises_on_errors(live_server: LiveServer) -> None:
    out = run_client(
        "air-current",
        "openai_client.py",
        [str(JFK.path), "--client", "sync", "--model", "no-such-model"],
        sdk_env(live_server),
    )
    call = out["calls"]["sync"]
    assert not call["ok"] and "404" in json.dumps(call["error"])
