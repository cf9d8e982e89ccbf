"""``python -m bench.tails [--seed 37]``: the eval set's short clips and FLEURS-en, each followed by
2-8 s of room noise (pink hiss or low rumble, 15-30 dB under the speech, over the clip and its tail),
sent without a language; WER and the words added after the last one said (a caption of the tail,
"Thank you."; the alignment may time it inside the speech), beside faster-whisper's own
``transcribe`` (beam 5, ``language="en"``) on the same audio. Each seed draws another set.
In-process over the app (real model, real HTTP handling through Starlette's test client).
"""

from __future__ import annotations

import argparse
import io

import jiwer
import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient

from app.audio.pcm import SAMPLE_RATE
from app.config import Settings
from app.main import create_app
from app.models.registry import embedded_model_path
from tests.support.evalset import Clip, clips, normalize, wer

URL = "/v1/audio/transcriptions"


def with_noisy_tail(clip: Clip, rng: np.random.Generator) -> np.ndarray:
    speech, rate = sf.read(clip.path, dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE, (clip.id, rate)
    speech = speech.mean(axis=1)
    tail_s = rng.uniform(2.0, 8.0)
    white = rng.standard_normal(len(speech) + int(tail_s * SAMPLE_RATE))
    if rng.random() < 0.5:
        noise = np.convolve(white, np.ones(8) / 8, mode="same")  # hiss
    else:
        walk = np.cumsum(white)
        noise = walk - np.convolve(walk, np.ones(400) / 400, mode="same")  # rumble, below ~40 Hz taken out
    snr_db = rng.uniform(15, 30)
    noise *= np.sqrt(np.mean(speech**2)) / (np.sqrt(np.mean(noise**2)) * 10 ** (snr_db / 20))
    noise[: len(speech)] += speech
    return noise.clip(-1, 1).astype(np.float32)


def added_at_the_end(reference: str, text: str) -> int:
    """Words inserted after the reference's last word."""
    ref, hyp = normalize(reference), normalize(text)
    if not hyp:
        return 0
    last = jiwer.process_words(ref, hyp).alignments[0][-1]
    return last.hyp_end_idx - last.hyp_start_idx if last.type == "insert" else 0


def main() -> None:
    from faster_whisper import WhisperModel

    parser = argparse.ArgumentParser(prog="python -m bench.tails")
    parser.add_argument("--seed", type=int, default=37)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    chosen = clips("short") + [c for c in clips("multilingual") if c.raw["language"] == "en"]
    audio = [with_noisy_tail(c, rng) for c in chosen]
    library = WhisperModel(str(embedded_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
    texts: dict[str, list[str]] = {"server": [], "library": []}
    with TestClient(create_app(Settings())) as client:
        for samples in audio:
            buffer = io.BytesIO()
            sf.write(buffer, samples, SAMPLE_RATE, format="WAV")
            r = client.post(
                URL,
                data={"model": "whisper-1", "response_format": "verbose_json"},
                files={"file": ("tail.wav", buffer.getvalue(), "audio/wav")},
            )
            r.raise_for_status()
            body = r.json()
            texts["server"].append(body["text"])
            segments = list(library.transcribe(samples, language="en", beam_size=5)[0])
            texts["library"].append("".join(s.text for s in segments))
    refs = [c.text for c in chosen]
    print(f"{len(chosen)} clips with noisy tails (seed {args.seed})")
    print("| | WER | clips with words added at the end (words) |")
    print("| --- | --- | --- |")
    for name, key in (("server, no language", "server"), ("library `transcribe`, en", "library")):
        added = [added_at_the_end(r, t) for r, t in zip(refs, texts[key], strict=True)]
        print(f"| {name} | {100 * wer(refs, texts[key]):.2f}% | {sum(a > 0 for a in added)} ({sum(added)}) |")


if __name__ == "__main__":
    main()
