"""Telephone audio uploads (G.711 mu-law / A-law at 8 kHz, in WAV, AU and headerless form, made with
ffmpeg from eval speech) decode to the call's samples and transcribe like its 16-bit version."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.audio.decode import decode_audio
from app.audio.pcm import PcmFormat
from tests.support.evalset import wer
from tests.support.harness import LiveServer
from tests.support.telephone import CLIPS, VARIANTS, telephone

Calls = dict[tuple[str, str], Path]
G711_KINDS = ("wav", "au", "raw")


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Calls:
    folder = tmp_path_factory.mktemp("telephone")
    return {(clip.id, variant): telephone(folder, clip, variant) for clip in CLIPS for variant in VARIANTS}


def decoded(path: Path, variant: str) -> np.ndarray:
    content_type = VARIANTS[variant][1]
    audio = decode_audio(path.read_bytes(), content_type=content_type, pcm=PcmFormat(), max_duration_s=600)
    assert audio.source_sample_rate == 8000, variant
    return audio.to_float()


def test_wav_au_and_headerless_g711_decode_to_the_call(calls: Calls) -> None:
    for clip in CLIPS:
        linear = decoded(calls[clip.id, "s16-wav"], "s16-wav")
        for codec in ("mulaw", "alaw"):
            wav, au, raw = (
                decoded(calls[clip.id, f"{codec}-{kind}"], f"{codec}-{kind}") for kind in G711_KINDS
            )
            # one encoding of the same 8 kHz audio, three containers: the same samples
            assert np.array_equal(wav, au) and np.array_equal(wav, raw), (clip.id, codec)
            # and close to the 16-bit version (G.711 keeps ~38 dB of signal to quantisation noise)
            assert len(wav) == len(linear) and np.corrcoef(wav, linear)[0, 1] > 0.99, (clip.id, codec)


def test_g711_uploads_transcribe_like_the_16_bit_call(live_server: LiveServer, calls: Calls) -> None:
    # The containers of one codec decode to the same samples (above): each clip goes up in one of them.
    sent = {
        (clip.id, codec): f"{codec}-{G711_KINDS[i % 3]}" if codec != "s16" else "s16-wav"
        for i, clip in enumerate(CLIPS)
        for codec in ("s16", "mulaw", "alaw")
    }

    def text(key: tuple[str, str]) -> str:
        variant = sent[key]
        path = calls[key[0], variant]
        r = httpx.post(
            live_server.base_url + "/v1/audio/transcriptions",
            data={"model": "whisper-1", "language": "en"},
            files={"file": (path.name, path.read_bytes(), VARIANTS[variant][1])},
            headers={"Authorization": f"Bearer {live_server.api_key}"},
            timeout=300,
        )
        assert r.status_code == 200, (variant, r.text)
        return str(r.json()["text"])

    with ThreadPoolExecutor(2) as pool:
        texts = dict(zip(sent, pool.map(text, sent), strict=True))
    references = [clip.text for clip in CLIPS]
    scores = {c: wer(references, [texts[clip.id, c] for clip in CLIPS]) for c in ("s16", "mulaw", "alaw")}
    print("WER by encoding of the 8 kHz calls:", scores)
    assert scores["s16"] < 0.25, (scores, texts)
    assert scores["mulaw"] <= scores["s16"] + 0.02 and scores["alaw"] <= scores["s16"] + 0.02, (scores, texts)
