"""Stereo calls made from the eval set's short clips: one reader per channel, taking turns, each
channel also carrying the other's voice ``leak_db`` down (a headset's crosstalk, a line's echo),
with exact turns and each channel's reference text; and how a multichannel answer is scored."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from tests.support.diarization_sets import RATE, load, short_clip_readers, trimmed
from tests.support.evalset import clips, wer


@dataclass(frozen=True)
class StereoCall:
    id: str
    samples: npt.NDArray[np.float32]  # (frames, 2): the talker on its own channel, the other leaking in
    clean: npt.NDArray[np.float32]  # (frames, 2): each talker alone on their channel (no leak)
    turns: list[tuple[float, float, int]]  # (start_s, end_s, channel) of each clip's speech
    texts: tuple[str, str]  # each channel's reference: its clips' transcripts, in order
    said: tuple[str, ...] = ()  # each turn's transcript, in turn order

    def wav(self, samples: npt.NDArray[np.float32] | None = None) -> bytes:
        buf = io.BytesIO()
        sf.write(buf, self.samples if samples is None else samples, RATE, format="WAV", subtype="PCM_16")
        return buf.getvalue()

    def channel_at(self, t: float) -> int | None:
        """Whose turn it is at ``t`` (None between turns)."""
        return next((c for s, e, c in self.turns if s - 0.3 <= t <= e + 0.3), None)


@cache
def stereo_call(seed: int, turns: int = 6, leak_db: float = -20.0) -> StereoCall:
    """Two readers of the short clips (different voices) on channels 0 and 1, alternating turns
    with 0.4-1.2 s pauses of faint noise; channel 0 speaks first. Each clip is used at most once."""
    rng = random.Random(seed)
    readers = short_clip_readers()
    texts_of = {c.path: c.text for c in clips("short")}
    a, b = rng.sample(sorted(readers), 2)
    pools = [rng.sample(readers[a], len(readers[a])), rng.sample(readers[b], len(readers[b]))]
    own: list[list[npt.NDArray[np.float32]]] = [[], []]
    placed: list[tuple[float, float, int]] = []
    texts: list[list[str]] = [[], []]
    said: list[str] = []
    noise = np.random.default_rng(seed)
    t = 0
    for k in range(turns):
        channel = k % 2
        path = pools[channel][(k // 2) % len(pools[channel])]
        audio, _ = trimmed(load(path))
        pause = int(rng.uniform(0.4, 1.2) * RATE)
        for c in (0, 1):
            own[c].append(np.zeros(pause, np.float32))
            own[c].append(audio if c == channel else np.zeros_like(audio))
        start = (t + pause) / RATE
        t += pause + len(audio)
        placed.append((start, t / RATE, channel))
        texts[channel].append(texts_of[path])
        said.append(texts_of[path])
    tail = RATE // 2
    clean = np.stack([np.concatenate([*own[c], np.zeros(tail, np.float32)]) for c in (0, 1)], axis=1)
    leak = 10 ** (leak_db / 20)
    mixed = clean + leak * clean[:, ::-1]
    mixed += noise.normal(0, 3e-4, mixed.shape).astype(np.float32)
    clean = clean + noise.normal(0, 3e-4, clean.shape).astype(np.float32)
    return StereoCall(
        f"call-{seed}",
        mixed.astype(np.float32),
        clean,
        placed,
        (" ".join(texts[0]), " ".join(texts[1])),
        tuple(said),
    )


def right_channel_share(call: StereoCall, words: list[dict[str, Any]]) -> tuple[int, int]:
    """(words on the channel whose turn it is, words said in a turn) of a verbose_json's words."""
    judged = [(w, call.channel_at((w["start"] + w["end"]) / 2)) for w in words]
    judged = [(w, c) for w, c in judged if c is not None]
    return sum(w["channel"] == c for w, c in judged), len(judged)


def channel_wer(call: StereoCall, channel: int, words: list[dict[str, Any]]) -> float:
    """WER of one channel's words (a verbose_json's, with ``channel``) against its reference."""
    return wer([call.texts[channel]], [" ".join(w["word"] for w in words if w["channel"] == channel)])
