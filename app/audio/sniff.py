"""What an upload is, from its first bytes: which decoder gets it, and a name for error messages.

The declared content type is not trusted (the AI Refinery SDK labels every upload ``audio/wav``);
only the bytes decide. Anything not recognised here is headerless PCM at best, and
``plausible_pcm`` decides whether it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Decoder = Literal["soundfile", "av", "none"]

HEAD_BYTES = 64


@dataclass(frozen=True, slots=True)
class Found:
    """``decoder``: ``soundfile`` (libsndfile first, FFmpeg if it fails), ``av`` (FFmpeg) or ``none``
    (not audio, or nothing recognised); ``name``: what the bytes look like, for messages."""

    decoder: Decoder
    name: str


# (offset, magic, decoder, name); checked in order.
_MAGIC: tuple[tuple[int, bytes, Decoder, str], ...] = (
    (0, b"fLaC", "soundfile", "a FLAC file"),
    (0, b"OggS", "soundfile", "an Ogg file"),
    (0, b"FORM", "soundfile", "an AIFF file"),
    (0, b".snd", "soundfile", "an AU file"),
    (0, b"caff", "soundfile", "a CAF file"),
    (0, b"ID3", "soundfile", "an MP3 file"),
    (4, b"ftyp", "av", "an MP4/M4A/MOV/3GP file"),
    (4, b"moov", "av", "a QuickTime file"),
    (4, b"mdat", "av", "a QuickTime file"),
    (4, b"wide", "av", "a QuickTime file"),
    (4, b"free", "av", "a QuickTime file"),
    (0, b"\x1aE\xdf\xa3", "av", "a WebM/Matroska file"),
    (0, b"0&\xb2u\x8ef\xcf\x11", "av", "a WMA/ASF file"),
    (0, b"#!AMR", "av", "an AMR file"),
    (0, b"wvpk", "av", "a WavPack file"),
    (0, b"MAC ", "av", "a Monkey's Audio file"),
    (0, b"\x89PNG", "none", "a PNG image"),
    (0, b"\xff\xd8\xff", "none", "a JPEG image"),
    (0, b"GIF8", "none", "a GIF image"),
    (0, b"%PDF", "none", "a PDF document"),
    (0, b"PK\x03\x04", "none", "a ZIP archive (or an Office document)"),
    (0, b"\x1f\x8b", "none", "a gzip archive"),
    (0, b"BZh", "none", "a bzip2 archive"),
    (0, b"\xfd7zXZ\x00", "none", "an xz archive"),
    (0, b"7z\xbc\xaf", "none", "a 7-Zip archive"),
    (0, b"Rar!", "none", "a RAR archive"),
    (0, b"\x7fELF", "none", "an ELF executable"),
    (0, b"MZ", "none", "a Windows executable"),
    (0, b"SQLite format 3", "none", "an SQLite database"),
    (0, b"MThd", "none", "a MIDI file (notes, not recorded sound)"),
)


def identify(head: bytes) -> Found:
    """Name the container from the first ``HEAD_BYTES`` bytes."""
    if head.startswith((b"RIFF", b"RIFX", b"RF64")):
        kind = head[8:12]
        if kind == b"WAVE":
            return Found("soundfile", "a WAV file")
        if kind == b"WEBP":
            return Found("none", "a WebP image")
        return Found("av", f"a RIFF {kind.decode('latin-1').strip() or '?'!r} file")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # a byte-order mark, not an MPEG frame sync
        return Found("none", "UTF-16 text")
    for offset, magic, decoder, name in _MAGIC:
        if head.startswith(magic, offset):
            return Found(decoder, name)
    if len(head) >= 4 and head[0] == 0xFF and head[1] & 0xF0 == 0xF0 and head[1] & 0x06 == 0:
        return Found("av", "an ADTS AAC stream")
    if _mpeg_audio_frame(head):
        return Found("soundfile", "an MP3 file")
    if head.startswith(b"\x0b\x77"):
        return Found("av", "an AC-3 stream")
    return Found("none", "")


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header: sync, a layer, a bitrate and a sample rate that exist."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def describe_text(head: bytes) -> str | None:
    """``"text"`` kinds for bytes that read as text (UTF-8 in any script, or UTF-16), else None."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text"
    if head.startswith(b"\xef\xbb\xbf"):
        return "UTF-8 text"
    for encoding, what in (("utf-8", "text"), ("utf-16-le", "UTF-16 text"), ("utf-16-be", "UTF-16 text")):
        try:
            text = head.decode(encoding, errors="strict")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # a character cut at the end of the head is fine
                continue
            text = head[: exc.start].decode(encoding)
        if text and sum(c.isprintable() or c in "\t\r\n" for c in text) >= 0.97 * len(text):
            return what
    return None


# Lag-1 roughness mean(diff^2)/var of a signal: 2 for white noise (random or compressed bytes,
# text read as samples), well below 1 for sound, which is mostly low-pass.
_MAX_PCM_ROUGHNESS = 1.5
# Hissy speech can be rough yet is still peaky (excess kurtosis 10-25 in the eval set), where random
# or compressed bytes read as samples are uniform (about -1.2).
_MAX_PEAKY_ROUGHNESS = 1.85
_MIN_PEAKY_KURTOSIS = 3.0


def plausible_pcm(samples: np.ndarray) -> bool:
    """Whether 16-bit samples read from unrecognised bytes sound like a recording, not data."""
    x = samples.astype(np.float64)
    if len(x) < 2:
        return False
    variance = float(np.var(x))
    if variance == 0.0:
        return True  # digital silence
    roughness = float(np.mean(np.diff(x) ** 2)) / variance
    if roughness < _MAX_PCM_ROUGHNESS:
        return True
    kurtosis = float(np.mean((x - x.mean()) ** 4)) / variance**2 - 3.0
    return roughness < _MAX_PEAKY_ROUGHNESS and kurtosis > _MIN_PEAKY_KURTOSIS
