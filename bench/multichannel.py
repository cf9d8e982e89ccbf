"""``python -m bench.multichannel``: stereo calls made from the eval set's readers (one per channel,
taking turns, the other leaking in at -20 dB) transcribed with ``multichannel=true``: the share of
words on the right channel, and each channel's WER beside that channel transcribed alone (its own
audio, leak included, as a mono upload) and its talker alone (no leak).

In-process over the app (real model, real HTTP handling through Starlette's test client).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import numpy.typing as npt
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.support.evalset import wer
from tests.support.stereo_calls import StereoCall, channel_wer, right_channel_share, stereo_call

URL = "/v1/audio/transcriptions"


def _text(client: TestClient, call: StereoCall, samples: npt.NDArray[np.float32]) -> str:
    r = client.post(
        URL, data={"model": "whisper-1"}, files={"file": ("c.wav", call.wav(samples), "audio/wav")}
    )
    r.raise_for_status()
    return str(r.json()["text"])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.multichannel")
    parser.add_argument("--calls", type=int, default=6)
    args = parser.parse_args()
    right = judged = 0
    rows: list[tuple[str, int, float, float, float]] = []
    pooled: list[tuple[str, list[str]]] = []  # each channel's reference, and its three transcripts
    with TestClient(create_app(Settings())) as client:
        for seed in range(args.calls):
            call = stereo_call(seed)
            started = time.monotonic()
            data = {"model": "whisper-1", "response_format": "verbose_json", "multichannel": "true"}
            r = client.post(
                URL,
                data={**data, "timestamp_granularities[]": "word"},
                files={"file": ("c.wav", call.wav(), "audio/wav")},
            )
            r.raise_for_status()
            split_s = time.monotonic() - started
            words = r.json()["words"]
            ok, n = right_channel_share(call, words)
            right, judged = right + ok, judged + n
            for c in (0, 1):
                texts = [
                    " ".join(w["word"] for w in words if w["channel"] == c),
                    _text(client, call, call.samples[:, c]),
                    _text(client, call, call.clean[:, c]),
                ]
                pooled.append((call.texts[c], texts))
                alone, clean = (wer([call.texts[c]], [t]) for t in texts[1:])
                rows.append((call.id, c, channel_wer(call, c, words), alone, clean))
            length_s = call.samples.shape[0] / 16000
            print(
                f"{call.id}: {ok}/{n} words on the right channel ({length_s:.0f} s, {split_s:.1f} s)",
                flush=True,
            )
    print(f"\nwords on the right channel: {right}/{judged} = {100 * right / judged:.1f}%\n")
    print("| call | channel | WER multichannel | WER channel alone | WER talker alone (no leak) |")
    print("| --- | --- | --- | --- | --- |")
    for call_id, c, split_wer, alone, clean in rows:
        print(f"| {call_id} | {c} | {100 * split_wer:.1f} | {100 * alone:.1f} | {100 * clean:.1f} |")
    refs = [ref for ref, _ in pooled]
    split_wer, alone, clean = (100 * wer(refs, [texts[k] for _, texts in pooled]) for k in range(3))
    print(f"| all channels | | {split_wer:.1f} | {alone:.1f} | {clean:.1f} |")
    worst = max(100 * (s - c) for _, _, s, _, c in rows)
    print(f"\nworst channel: {worst:+.1f} points against its talker alone")


if __name__ == "__main__":
    main()
