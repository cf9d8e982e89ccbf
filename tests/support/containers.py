"""Real recordings in every container people send, made from ../shared/eval with ffmpeg at test time."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.evalset import EVAL_DIR, clips

# A short real clip ("you don't mean that you thought me so silly").
CLIP = next(c for c in clips("short") if c.id == "ls-test-other-1688-142285-0002")

# name -> ffmpeg output arguments: what phones, browsers and desktop recorders produce.
FORMATS: dict[str, list[str]] = {
    "m4a-aac": ["-c:a", "aac", "-f", "ipod"],
    "m4a-alac": ["-c:a", "alac", "-f", "ipod"],
    "mp4-aac": ["-c:a", "aac", "-f", "mp4"],
    "mov-aac": ["-c:a", "aac", "-ar", "44100", "-ac", "2", "-f", "mov"],
    "3gp-aac": ["-c:a", "aac", "-ar", "16000", "-ac", "1", "-f", "3gp"],
    "webm-opus": ["-c:a", "libopus", "-f", "webm"],
    "mkv-vorbis": ["-c:a", "libvorbis", "-f", "matroska"],
    "wma": ["-c:a", "wmav2", "-f", "asf"],
    "aac-adts": ["-c:a", "aac", "-f", "adts"],
    "mp3": ["-c:a", "libmp3lame", "-f", "mp3"],
    "ogg-opus": ["-c:a", "libopus", "-f", "ogg"],
    "ogg-vorbis": ["-c:a", "libvorbis", "-f", "ogg"],
    "flac-48k-stereo": ["-c:a", "flac", "-ar", "48000", "-ac", "2", "-f", "flac"],
    "wav": ["-c:a", "pcm_s16le", "-f", "wav"],
}
VIDEO_IN = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=5"]


def ffmpeg(out: Path, inputs: list[str], args: list[str]) -> Path:
    if not out.exists():
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *inputs, *args, str(out)],
            check=True,
            timeout=120,
        )
    return out


def make_all(folder: Path) -> dict[str, Path]:
    """Every format of ``FORMATS``, plus a phone video (H.264 + AAC)."""
    clip = ["-i", str(CLIP.path)]
    made = {name: ffmpeg(folder / f"clip.{name}", clip, args) for name, args in FORMATS.items()}
    video = ["-shortest", "-c:v", "libx264", "-c:a", "aac", "-f", "mp4"]
    made["video-mp4"] = ffmpeg(folder / "clip.video-mp4", [*VIDEO_IN, *clip], video)
    return made


def video_without_audio(folder: Path) -> Path:
    return ffmpeg(folder / "silent-film.mp4", VIDEO_IN, ["-t", "1", "-c:v", "libx264", "-f", "mp4"])


__all__ = ["CLIP", "EVAL_DIR", "FORMATS", "make_all", "video_without_audio"]
