"""Telephone audio live: openai-python's realtime client streams G.711 at 8 kHz (a phone call made from
eval speech with ffmpeg) as ``audio/pcmu`` (GA session) and ``g711_alaw`` (beta session and client);
the completed transcripts score within 2 points of WER of the batch endpoint on the same audio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.support.containers import ffmpeg
from tests.support.evalset import wer
from tests.support.harness import LiveServer
from tests.support.telephone import CLIPS
from tests.system.test_real_realtime import COMPLETED, run_realtime_client

CODECS = {"audio/pcmu": ("mulaw", "audio/basic"), "audio/pcma": ("alaw", "audio/pcma;rate=8000")}
REFERENCE = " ".join(clip.text for clip in CLIPS)


@pytest.fixture(scope="module")
def call(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clips one after another at 8 kHz, 1.5 s of silence around each (the turns of a call)."""
    folder = tmp_path_factory.mktemp("call")
    gap = np.zeros(12000, np.float32)
    parts = [gap]
    for clip in CLIPS:
        samples, rate = sf.read(clip.path, dtype="float32")
        parts += [soxr.resample(samples, rate, 8000).astype(np.float32), gap]
    path = folder / "call-8k.wav"
    sf.write(path, np.concatenate(parts), 8000, subtype="PCM_16")
    return path


def g711(call: Path, fmt: str) -> Path:
    """The call as headerless G.711, encoded by ffmpeg."""
    codec, _ = CODECS[fmt]
    return ffmpeg(call.with_suffix(f".{codec}"), ["-i", str(call)], ["-f", codec])


def batch_text(server: LiveServer, path: Path, content_type: str) -> str:
    r = httpx.post(
        server.base_url + "/v1/audio/transcriptions",
        data={"model": "whisper-1", "language": "en"},
        files={"file": (path.name, path.read_bytes(), content_type)},
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=300,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["text"])


@pytest.mark.parametrize(("fmt", "beta"), [("audio/pcmu", False), ("audio/pcma", True)])
def test_openai_realtime_client_streams_g711_like_the_batch_endpoint(
    live_server: LiveServer, call: Path, fmt: str, beta: bool
) -> None:
    audio = g711(call, fmt)
    out = run_realtime_client(
        live_server, audio, "--format", fmt, "--speed", "2", *(["--beta"] if beta else [])
    )
    events: list[dict[str, Any]] = [e["event"] for e in out["events"]]
    classes = {e["event"]["type"]: e["class"] for e in out["events"]}  # what the SDK parsed each into
    if beta:
        updated = next(e for e in events if e["type"] == "transcription_session.updated")
        assert updated["session"]["input_audio_format"] == "g711_alaw", updated
        assert classes[updated["type"]] == "TranscriptionSessionUpdatedEvent"
    else:
        updated = next(e for e in events if e["type"] == "session.updated")
        assert updated["session"]["audio"]["input"]["format"]["type"] == "audio/pcmu", updated
        assert classes[updated["type"]] == "SessionUpdatedEvent"
    assert not [e for e in events if e["type"] == "error"], events
    completed = [e["transcript"] for e in events if e["type"] == COMPLETED]
    assert len(completed) >= len(CLIPS), completed  # a turn (or more) per sentence
    live = wer([REFERENCE], [" ".join(completed)])
    batch = wer([REFERENCE], [batch_text(live_server, audio, CODECS[fmt][1])])
    print(f"{fmt} ({'beta' if beta else 'GA'}): live WER {live:.2%}, batch WER {batch:.2%}")
    assert live <= batch + 0.02, (live, batch, completed)
