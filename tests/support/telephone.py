"""Telephone audio made from ../shared/eval with ffmpeg: 8 kHz mono 16-bit, G.711 mu-law and A-law, in
WAV, AU and headerless form."""

from __future__ import annotations

from pathlib import Path

from tests.support.containers import ffmpeg
from tests.support.evalset import Clip, clips

# Six read sentences by six speakers (~130 words): one word is under a point of WER.
CLIP_IDS = (
    "ls-test-other-1688-142285-0006",
    "ls-test-other-1998-15444-0004",
    "ls-test-other-3331-159605-0009",
    "ls-test-other-367-130732-0004",
    "ls-test-clean-1089-134686-0002",
    "librivox-sense-and-sensibility-01-0870",
)
CLIPS: list[Clip] = [c for c in clips("short") if c.id in CLIP_IDS]

# variant -> (ffmpeg output arguments, the content type a client would label it with)
VARIANTS: dict[str, tuple[list[str], str]] = {
    "s16-wav": (["-acodec", "pcm_s16le", "-f", "wav"], "audio/wav"),
    "mulaw-wav": (["-acodec", "pcm_mulaw", "-f", "wav"], "audio/wav"),
    "alaw-wav": (["-acodec", "pcm_alaw", "-f", "wav"], "audio/wav"),
    "mulaw-au": (["-acodec", "pcm_mulaw", "-f", "au"], "audio/basic"),
    "alaw-au": (["-acodec", "pcm_alaw", "-f", "au"], "audio/basic"),
    "mulaw-raw": (["-f", "mulaw"], "audio/basic"),
    "alaw-raw": (["-f", "alaw"], "audio/pcma;rate=8000"),
}


def telephone(folder: Path, clip: Clip, variant: str) -> Path:
    """The clip at 8 kHz mono in ``variant`` (made once per folder)."""
    args, _ = VARIANTS[variant]
    return ffmpeg(folder / f"{clip.id}.{variant}", ["-i", str(clip.path)], ["-ar", "8000", "-ac", "1", *args])
