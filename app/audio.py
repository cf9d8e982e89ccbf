"""Decode an upload into 16 kHz mono float32: any container soundfile reads, or headerless PCM.

Containers are told apart by their bytes, never by the declared content type (the AI Refinery SDK
labels every upload ``audio/wav``); only an explicit raw-PCM content type (``audio/pcm``,
``audio/L16``) skips sniffing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from app.errors import InvalidRequest, UnsupportedAudio, UploadTooLarge

SAMPLE_RATE = 16000

Samples = npt.NDArray[np.float32]

# Leading bytes of containers soundfile decodes: if one of these fails to decode, the file is broken.
_AUDIO_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"RIFF"),
    (0, b"RIFX"),
    (0, b"RF64"),
    (0, b"fLaC"),
    (0, b"OggS"),
    (0, b"FORM"),
    (0, b".snd"),
    (0, b"caff"),
    (0, b"ID3"),
)
# Common non-audio uploads, named so the error says what was sent.
_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM file"),
)


@dataclass(frozen=True, slots=True)
class PcmFormat:
    """How to read headerless PCM: signed 16-bit samples, interleaved channels."""

    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    # None: decide from the samples (only used for audio/L16, whose RFC says big-endian but whose
    # senders often mean little-endian).
    little_endian: bool | None = True


@dataclass(frozen=True, slots=True)
class Audio:
    """Decoded audio at 16 kHz mono plus what the upload was."""

    samples: Samples
    source_sample_rate: int
    source_channels: int
    source_format: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def parse_pcm_content_type(content_type: str | None, default: PcmFormat) -> PcmFormat | None:
    """A ``PcmFormat`` when the content type declares raw PCM (``audio/pcm;rate=8000``), else None."""
    if not content_type:
        return None
    kind, *params = (part.strip() for part in content_type.split(";"))
    kind = kind.lower()
    if kind not in {"audio/pcm", "audio/l16", "audio/raw", "audio/x-raw", "audio/s16le"}:
        return None
    rate, channels = default.sample_rate, default.channels
    little_endian: bool | None = None if kind == "audio/l16" else True
    for param in params:
        name, _, value = param.partition("=")
        name, value = name.strip().lower(), value.strip().strip('"').lower()
        try:
            if name in {"rate", "samplerate", "sample_rate"}:
                rate = int(value)
            elif name == "channels":
                channels = int(value)
            elif name in {"endianness", "endian"}:
                little_endian = value.startswith("little")
        except ValueError:
            raise InvalidRequest(f"bad {name!r} in content type {content_type!r}", field="file") from None
    if not 1000 <= rate <= 384000 or not 1 <= channels <= 32:
        raise InvalidRequest(f"unsupported PCM parameters in content type {content_type!r}", field="file")
    return PcmFormat(rate, channels, little_endian)


def decode_audio(data: bytes, *, content_type: str | None, pcm: PcmFormat, max_duration_s: float) -> Audio:
    """Decode, downmix and resample an upload; raise a client error for anything that is not audio."""
    if not data:
        raise InvalidRequest("the uploaded file is empty", field="file")
    declared_pcm = parse_pcm_content_type(content_type, pcm)
    if declared_pcm is not None:
        return _finish(*_read_pcm(data, declared_pcm), "pcm", max_duration_s)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            frames_limit = int(max_duration_s * f.samplerate) + 1
            if f.frames > frames_limit:
                raise _too_long(f.frames / f.samplerate, max_duration_s)
            samples = f.read(dtype="float32", always_2d=True)
            return _finish(samples, f.samplerate, f.format.lower(), max_duration_s)
    except RuntimeError as exc:  # soundfile.LibsndfileError: not a container it knows, or broken
        if any(data.startswith(magic, offset) for offset, magic in _AUDIO_MAGIC):
            raise UnsupportedAudio(f"the audio file could not be decoded: {exc}", field="file") from None
    for magic, what in _OTHER_MAGIC:
        if data.startswith(magic):
            raise UnsupportedAudio(f"the uploaded file is {what}, not audio", field="file")
    if _looks_like_text(data):
        raise UnsupportedAudio(
            "the uploaded file is text, not audio (send WAV, FLAC, OGG, MP3 or raw 16-bit PCM)",
            field="file",
        )
    return _finish(*_read_pcm(data, pcm), "pcm", max_duration_s)


def _read_pcm(data: bytes, fmt: PcmFormat) -> tuple[npt.NDArray[np.float32], int]:
    frame_bytes = 2 * fmt.channels
    if len(data) % frame_bytes:
        raise UnsupportedAudio(
            f"not a known audio container, and {len(data)} bytes is not a whole number of "
            f"16-bit {fmt.channels}-channel PCM frames",
            field="file",
        )
    little = fmt.little_endian if fmt.little_endian is not None else _guess_little_endian(data)
    ints = np.frombuffer(data, dtype="<i2" if little else ">i2").reshape(-1, fmt.channels)
    return ints.astype(np.float32) / 32768.0, fmt.sample_rate


def _guess_little_endian(data: bytes) -> bool:
    """Speech is low-pass: read with the wrong byte order it turns into white noise.

    So the byte order whose sample-to-sample differences are smaller relative to the signal wins.
    """
    head = data[: 2 * SAMPLE_RATE * 10]
    head = head[: len(head) // 2 * 2]

    def roughness(dtype: str) -> float:
        x = np.frombuffer(head, dtype=dtype).astype(np.float64)
        energy = float(np.mean(x**2)) if len(x) else 0.0
        return float(np.mean(np.diff(x) ** 2)) / energy if energy > 0 and len(x) > 1 else 0.0

    return roughness("<i2") <= roughness(">i2")


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return printable >= 0.95 * len(head)


def _too_long(duration_s: float, max_duration_s: float) -> UploadTooLarge:
    return UploadTooLarge(
        f"the audio is {duration_s:.0f} s long; this server accepts at most {max_duration_s:.0f} s",
        field="file",
    )


def _finish(samples: npt.NDArray[np.float32], rate: int, fmt: str, max_duration_s: float) -> Audio:
    frames, channels = samples.shape
    if frames == 0:
        raise InvalidRequest("the uploaded audio contains no samples", field="file")
    if frames / rate > max_duration_s:
        raise _too_long(frames / rate, max_duration_s)
    mono = samples.mean(axis=1) if channels > 1 else samples[:, 0]
    mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    out = np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)
    return Audio(out, rate, channels, fmt)
