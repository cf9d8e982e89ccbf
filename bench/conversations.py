"""``python -m bench.conversations [--first 200] [--calls 60]``: two readers of the eval set's short
clips taking turns (``tests.support.stereo_calls``, both channels mixed to one, 8 turns each) sent
as mono uploads without a language; WER and the turns that came back with no text, beside
faster-whisper's own ``transcribe`` (beam 5, ``language="en"``) on the same audio.

A turn "has no text" when the segments overlap less than 30% of it. In-process over the app (real
model, real HTTP handling through Starlette's test client).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.models.registry import embedded_model_path
from tests.support.evalset import wer
from tests.support.stereo_calls import StereoCall, stereo_call

URL = "/v1/audio/transcriptions"


def unheard(call: StereoCall, segments: list[tuple[float, float]]) -> int:
    """Turns less than 30% covered by segments."""
    missed = 0
    for start, end, _ in call.turns:
        covered = sum(max(0.0, min(end, b) - max(start, a)) for a, b in segments)
        missed += covered < 0.3 * (end - start)
    return missed


def main() -> None:
    from faster_whisper import WhisperModel

    parser = argparse.ArgumentParser(prog="python -m bench.conversations")
    parser.add_argument("--first", type=int, default=200, help="first seed")
    parser.add_argument("--calls", type=int, default=60)
    args = parser.parse_args()
    settings = Settings()
    library = WhisperModel(str(embedded_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
    calls = [stereo_call(seed, turns=8) for seed in range(args.first, args.first + args.calls)]
    refs = [" ".join(call.said) for call in calls]
    ours: list[str] = []
    theirs: list[str] = []
    missed = {"server": 0, "library": 0}
    spent = {"server": 0.0, "library": 0.0}
    with TestClient(create_app(settings)) as client:
        for call in calls:
            mono = call.clean.sum(axis=1).astype(np.float32)
            started = time.monotonic()
            r = client.post(
                URL,
                data={"model": "whisper-1", "response_format": "verbose_json"},
                files={"file": ("c.wav", call.wav(mono), "audio/wav")},
            )
            r.raise_for_status()
            spent["server"] += time.monotonic() - started
            body: dict[str, Any] = r.json()
            ours.append(body["text"])
            missed["server"] += unheard(call, [(s["start"], s["end"]) for s in body["segments"]])
            started = time.monotonic()
            segments = list(library.transcribe(mono, language="en", beam_size=5)[0])
            spent["library"] += time.monotonic() - started
            theirs.append("".join(s.text for s in segments))
            missed["library"] += unheard(call, [(s.start, s.end) for s in segments])
    turns = sum(len(call.turns) for call in calls)
    audio_s = sum(len(call.clean) for call in calls) / 16000
    print(f"{len(calls)} conversations (seeds {args.first}-{args.first + args.calls - 1}), {audio_s:.0f} s")
    print("| | WER | turns with no text | seconds |")
    print("| --- | --- | --- | --- |")
    rows = (("server, no language", ours, "server"), ("library `transcribe`, en", theirs, "library"))
    for name, texts, key in rows:
        print(f"| {name} | {100 * wer(refs, texts):.2f}% | {missed[key]} / {turns} | {spent[key]:.1f} |")


if __name__ == "__main__":
    main()
