"""multichannel=true through openai-python 3.63 (``extra_body={"multichannel": True}``) against the
real server: verbose_json words on their talker's channel, diarized_json speakers by channel, and a
mono file refused with a 400 the SDK raises."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import soundfile as sf

from tests.support.harness import LiveServer
from tests.support.sdk_clients import run_client, sdk_env
from tests.support.stereo_calls import StereoCall, right_channel_share, stereo_call

EXTRA = ["--extra-body", json.dumps({"multichannel": True})]


@cache
def stereo(folder: Path) -> tuple[StereoCall, Path]:
    call = stereo_call(2, turns=4)
    path = folder / "call-stereo.wav"
    sf.write(path, call.samples, 16000, subtype="PCM_16")
    return call, path


def test_openai_python_multichannel(live_server: LiveServer) -> None:
    call, wav = stereo(live_server.log_path.parent)
    args = [str(wav), "--client", "sync", "--response-format", "verbose_json", *EXTRA]
    args += ["--timestamp-granularities", '["word"]']
    out = run_client("air-current", "openai_client.py", args, sdk_env(live_server))
    result = out["calls"]["sync"]
    assert result["ok"], out
    right, judged = right_channel_share(call, result["result"]["words"])
    assert judged >= 40 and right / judged >= 0.95, (right, judged)
    args = [str(wav), "--client", "sync", "--response-format", "diarized_json", *EXTRA]
    out = run_client("air-current", "openai_client.py", args, sdk_env(live_server))
    result = out["calls"]["sync"]
    assert result["ok"], out
    segments = result["result"]["segments"]
    assert {(s["speaker"], s["channel"]) for s in segments} == {("A", 0), ("B", 1)}


def test_openai_python_multichannel_on_mono_is_a_400(live_server: LiveServer) -> None:
    call, _ = stereo(live_server.log_path.parent)
    mono = live_server.log_path.parent / "call-mono.wav"
    sf.write(mono, call.samples[:, 0], 16000, subtype="PCM_16")
    out = run_client(
        "air-current", "openai_client.py", [str(mono), "--client", "sync", *EXTRA], sdk_env(live_server)
    )
    result = out["calls"]["sync"]
    assert not result["ok"] and result["error"]["status"] == 400, out
    assert "mono" in json.dumps(result["error"]["body"])
