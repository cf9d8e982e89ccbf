"""Decode an upload, block by block, into 16 kHz mono 16-bit samples, within memory limits.

Containers are told apart by their bytes (``app.sniff``), never by the declared content type (the
AI Refinery SDK labels every upload ``audio/wav``); only an explicit raw-PCM content type
(``audio/pcm``, ``audio/L16``) skips sniffing. libsndfile reads WAV/FLAC/OGG/AIFF/MP3, FFmpeg (PyAV,
``app.av_audio``) the rest. Each block is downmixed and resampled as it is decoded, so memory holds
16 kHz mono int16 (115 MB an hour), never the source at its own rate; the samples a decode may
produce are bounded at the source rate x channels, from the header and again block by block.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from app.errors import InvalidRequest, UnsupportedAudio, UploadTooLarge
from app.sniff import HEAD_BYTES, describe_text, identify, plausible_pcm

SAMPLE_RATE = 16000
MIN_SOURCE_RATE, MAX_SOURCE_RATE = 1000, 384000
MAX_CHANNELS = 64
# Default bound on decoded samples: max_audio_s of 48 kHz stereo.
SOURCE_SAMPLES_PER_S = 48000 * 2
_BLOCK_SAMPLES = 1 << 18
_UNKNOWN_FRAMES = 1 << 60  # source samples (all channels) per decoded block

Samples = npt.NDArray[np.float32]
Pcm16 = npt.NDArray[np.int16]
Charge = Callable[[int], None]


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
    """Decoded audio, 16 kHz mono int16 (half the memory of float32), plus what the upload was."""

    pcm: Pcm16
    source_sample_rate: int
    source_channels: int
    source_format: str

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / SAMPLE_RATE

    def window(self, start: int, end: int) -> Samples:
        """Samples ``[start, end)`` as float32 in [-1, 1), what the model takes."""
        return self.pcm[start:end].astype(np.float32) / np.float32(32768.0)

    def to_float(self) -> Samples:
        """All of it as float32 (4x the memory of ``pcm``: for short clips, tests, benchmarks)."""
        return self.window(0, len(self.pcm))

    @classmethod
    def from_float(cls, samples: Samples, source_format: str = "wav") -> Audio:
        """16 kHz mono float samples (tests, benchmarks)."""
        return cls(to_int16(samples), SAMPLE_RATE, 1, source_format)


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_duration_s: float
    # Samples at the source rate x channels a decode may produce (its CPU and header-trust bound).
    max_source_samples: int


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
        name, value = name.strip().lower()[:40], value.strip().strip('"').lower()
        try:
            if name in {"rate", "samplerate", "sample_rate"}:
                rate = int(value[:12])
            elif name == "channels":
                channels = int(value[:12])
            elif name in {"endianness", "endian"}:
                little_endian = value.startswith("little")
        except ValueError:
            raise InvalidRequest(f"bad {name!r} in the file's content type", field="file") from None
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE or not 1 <= channels <= 32:
        raise InvalidRequest("unsupported PCM parameters in the file's content type", field="file")
    return PcmFormat(rate, channels, little_endian)


def decode_audio(
    source: bytes | BinaryIO,
    *,
    content_type: str | None,
    pcm: PcmFormat,
    max_duration_s: float,
    max_source_samples: int | None = None,
    charge: Charge | None = None,
) -> Audio:
    """Decode, downmix and resample an upload; raise a client error for anything that is not audio.

    ``charge(nbytes)`` is called before each block of decoded audio is kept (the server's memory
    budget; it may raise to stop the decode).
    """
    file = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    size = file.seek(0, io.SEEK_END)
    file.seek(0)
    if not size:
        raise InvalidRequest("the uploaded file is empty", field="file")
    limits = DecodeLimits(
        max_duration_s,
        int(max_duration_s * SOURCE_SAMPLES_PER_S) if max_source_samples is None else max_source_samples,
    )
    sink = Sink(limits, charge)
    declared_pcm = parse_pcm_content_type(content_type, pcm)
    if declared_pcm is not None:
        return _read_pcm(file, size, declared_pcm, sink, check=False)
    head = file.read(4096)
    file.seek(0)
    found = identify(head[:HEAD_BYTES])
    if found.decoder != "none" or not found.name:
        opened = _read_soundfile(file, sink)
        if opened is not None:
            return opened
        file.seek(0)
    if found.decoder != "none":
        from app.av_audio import decode_with_av  # PyAV loads FFmpeg: only when needed

        return decode_with_av(file, sink, found.name)
    if found.name:
        raise UnsupportedAudio(f"the uploaded file is {found.name}, not audio", field="file")
    text = describe_text(head)
    if text is not None:
        raise UnsupportedAudio(
            f"the uploaded file is {text}, not audio (send WAV, FLAC, OGG, MP3, M4A, MP4, WebM, WMA "
            "or raw 16-bit PCM)",
            field="file",
        )
    return _read_pcm(file, size, pcm, sink, check=True)


class Sink:
    """Takes decoded blocks at the source rate, keeps them as 16 kHz mono int16, enforces limits."""

    def __init__(self, limits: DecodeLimits, charge: Charge | None) -> None:
        self.limits = limits
        self._charge = charge
        self._buffer = bytearray()  # grows in place (realloc/mremap): no copy at the end
        self._source_samples = 0
        self._resampler: soxr.ResampleStream | None = None
        self.rate = 0
        self.channels = 0

    def start(self, rate: int, channels: int, frames: int | None, what: str) -> None:
        """Check the header's layout and length before decoding anything."""
        if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
            raise UnsupportedAudio(
                f"{what} says its sample rate is {rate} Hz; audio is {MIN_SOURCE_RATE}-{MAX_SOURCE_RATE} Hz",
                field="file",
            )
        if not 1 <= channels <= MAX_CHANNELS:
            raise UnsupportedAudio(f"{what} says it has {channels} channels", field="file")
        if frames is not None and frames > 0:
            self._check(frames * channels, frames / rate)
        self.rate, self.channels = rate, channels
        if rate != SAMPLE_RATE:
            self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    @property
    def has_audio(self) -> bool:
        return bool(self._buffer)

    def count_source(self, samples: int) -> None:
        """Count decoded source samples (all channels) before they are converted."""
        self._source_samples += samples
        self._check(self._source_samples, None)

    def add(self, block: npt.NDArray[np.float32]) -> None:
        """A (frames, channels) float block at the started rate."""
        self.count_source(block.size)
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
        self.keep(self._resampler.resample_chunk(mono) if self._resampler is not None else mono)

    def keep(self, samples: Samples | Pcm16) -> None:
        """16 kHz mono samples (float or int16) to keep."""
        ints = samples if samples.dtype == np.int16 else to_int16(samples.astype(np.float32, copy=False))
        if not len(ints):
            return
        held_s = (len(self._buffer) // 2 + len(ints)) / SAMPLE_RATE
        if held_s > self.limits.max_duration_s + 1.0:
            raise _too_long(held_s, self.limits.max_duration_s)
        if self._charge is not None:
            self._charge(ints.nbytes)
        self._buffer += ints.astype("<i2", copy=False).tobytes()

    def finish(self, source_format: str) -> Audio:
        if self._resampler is not None:
            self.keep(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        if not self._buffer:
            raise InvalidRequest("the uploaded audio contains no samples", field="file")
        pcm = np.frombuffer(self._buffer, dtype="<i2").astype(np.int16, copy=False)
        return Audio(pcm, self.rate, self.channels, source_format)

    def _check(self, source_samples: int, duration_s: float | None) -> None:
        if duration_s is not None and duration_s > self.limits.max_duration_s:
            raise _too_long(duration_s, self.limits.max_duration_s)
        if source_samples > self.limits.max_source_samples:
            raise UploadTooLarge(
                f"the audio holds more than {self.limits.max_source_samples} samples (at its sample "
                "rate, all channels); this server decodes at most that many",
                field="file",
            )


def _read_soundfile(file: BinaryIO, sink: Sink) -> Audio | None:
    """Decode with libsndfile in blocks; None when it does not recognise the bytes."""
    try:
        f = sf.SoundFile(file)
    except (RuntimeError, TypeError, ValueError):  # LibsndfileError: not a format it knows
        return None
    with f:
        name = f"the {f.format} file"
        frames = f.frames if f.frames < _UNKNOWN_FRAMES else None  # libsndfile's "unknown" is huge
        sink.start(f.samplerate, f.channels, frames, name)
        block_frames = max(1, _BLOCK_SAMPLES // f.channels)
        try:
            while True:
                block = f.read(block_frames, dtype="float32", always_2d=True)
                if not len(block):
                    break
                sink.add(block)
        except (RuntimeError, ValueError) as exc:  # broken after a valid header
            raise UnsupportedAudio(f"{name} could not be decoded: {clean(str(exc))}", field="file") from None
        return sink.finish(f.format.lower())


def _read_pcm(file: BinaryIO, size: int, fmt: PcmFormat, sink: Sink, *, check: bool) -> Audio:
    frame_bytes = 2 * fmt.channels
    if size % frame_bytes:
        raise UnsupportedAudio(
            f"not a known audio container, and {size} bytes is not a whole number of "
            f"16-bit {fmt.channels}-channel PCM frames",
            field="file",
        )
    head = file.read(2 * SAMPLE_RATE * 10 // frame_bytes * frame_bytes)
    file.seek(0)
    little = fmt.little_endian if fmt.little_endian is not None else _guess_little_endian(head)
    dtype = np.dtype("<i2" if little else ">i2")
    if check and not plausible_pcm(np.frombuffer(head, dtype=dtype)):
        raise UnsupportedAudio(
            "the uploaded file is not a known audio container, and its bytes do not sound like raw "
            "16-bit PCM (they look like random or compressed data)",
            field="file",
        )
    sink.start(fmt.sample_rate, fmt.channels, size // frame_bytes, "the PCM upload")
    block_bytes = _BLOCK_SAMPLES // fmt.channels * frame_bytes
    while data := file.read(block_bytes):
        ints = np.frombuffer(data, dtype=dtype).reshape(-1, fmt.channels)
        sink.add(ints.astype(np.float32) / np.float32(32768.0))
    return sink.finish("pcm")


def _guess_little_endian(data: bytes) -> bool:
    """Speech is low-pass: read with the wrong byte order it turns into white noise.

    So the byte order whose sample-to-sample differences are smaller relative to the signal wins.
    """
    head = data[: len(data) // 2 * 2]

    def roughness(dtype: str) -> float:
        x = np.frombuffer(head, dtype=dtype).astype(np.float64)
        energy = float(np.mean(x**2)) if len(x) else 0.0
        return float(np.mean(np.diff(x) ** 2)) / energy if energy > 0 and len(x) > 1 else 0.0

    return roughness("<i2") <= roughness(">i2")


def to_int16(samples: Samples) -> Pcm16:
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)


def _too_long(duration_s: float, max_duration_s: float) -> UploadTooLarge:
    return UploadTooLarge(
        f"the audio is {duration_s:.0f} s long; this server accepts at most {max_duration_s:.0f} s",
        field="file",
    )


_ADDRESS = re.compile(r"\s*'?<[^<>]* at 0x[0-9a-fA-F]+>'?:?")


def clean(message: str) -> str:
    """A decoder's message without Python object addresses, bounded in length."""
    return _ADDRESS.sub("", message).strip()[:200]
