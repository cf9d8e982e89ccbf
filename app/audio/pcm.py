"""Decoded audio: 16 kHz mono 16-bit samples, and the ``Sink`` that decoders (``app.audio.decode``,
``app.audio.ffmpeg``) hand their blocks to. Each block is downmixed and resampled as it is decoded, so
memory holds 16 kHz mono int16 (115 MB an hour), never the source at its own rate; the samples a
decode may produce are bounded at the source rate x channels, from the header and again block by
block. The samples live in an anonymous mmap (``Samples16``) reserved from the header's length, not
in the malloc heap: growing it never copies, and what the budget charges is what memory holds.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr

from app.audio.g711 import Encoding
from app.errors import InvalidRequest, UnsupportedAudio, UploadTooLarge

SAMPLE_RATE = 16000
MIN_SOURCE_RATE, MAX_SOURCE_RATE = 1000, 384000
MAX_CHANNELS = 64
# Default bound on decoded samples: max_audio_s of 48 kHz stereo.
SOURCE_SAMPLES_PER_S = 48000 * 2

Samples = npt.NDArray[np.float32]
Pcm16 = npt.NDArray[np.int16]
Charge = Callable[[int], None]
# Told of each block a Sink keeps (16 kHz mono int16), after it is kept; the sink's ``window``
# reads what it kept so far.
Listener = Callable[["Sink", Pcm16], None]


@dataclass(frozen=True, slots=True)
class PcmFormat:
    """How to read headerless PCM: signed 16-bit (or G.711) samples, interleaved channels."""

    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    # None: decide from the samples (only used for audio/L16, whose RFC says big-endian but whose
    # senders often mean little-endian).
    little_endian: bool | None = True
    encoding: Encoding = "linear16"


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


class Sink:
    """Takes decoded blocks at the source rate, keeps them as 16 kHz mono int16, enforces limits."""

    def __init__(self, limits: DecodeLimits, charge: Charge | None, listener: Listener | None = None) -> None:
        self.limits = limits
        self._charge = charge
        self._listener = listener
        self._buffer = Samples16()
        self._charged = 0  # bytes charged so far (from the header's length, then as kept)
        self._source_samples = 0
        self._resampler: soxr.ResampleStream | None = None
        self.rate = 0
        self.channels = 0
        self.width = 1  # samples kept per frame: 1 (downmixed), or every channel (``ChannelSink``)

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
            # Charge what the header announces up front: a stream learns before its first byte
            # that the budget cannot hold it, rather than halfway through.
            self._charge_to(int(frames * SAMPLE_RATE / rate) * 2 * self.width)
            self._buffer.reserve((int(frames * SAMPLE_RATE / rate) * 2 + _SLACK_BYTES) * self.width)
        self.rate, self.channels = rate, channels
        if rate != SAMPLE_RATE:
            self._resampler = soxr.ResampleStream(
                rate, SAMPLE_RATE, self.width, dtype="float32", quality="HQ"
            )

    @property
    def has_audio(self) -> bool:
        return self._buffer.nbytes > 0

    def count_source(self, samples: int) -> None:
        """Count decoded source samples (all channels) before they are converted."""
        self._source_samples += samples
        self._check(self._source_samples, None)

    def add(self, block: npt.NDArray[np.float32]) -> None:
        """A (frames, channels) float block at the started rate."""
        self.count_source(block.size)
        if self.width > 1:
            mono = block  # (the channels kept apart)
        else:
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
        self.keep(self._resampler.resample_chunk(mono) if self._resampler is not None else mono)

    def keep(self, samples: Samples | Pcm16) -> None:
        """16 kHz samples (float or int16) to keep: mono, or ``width`` channels interleaved."""
        ints: Pcm16 = (
            samples  # type: ignore[assignment]
            if samples.dtype == np.int16
            else to_int16(samples.astype(np.float32, copy=False))
        )
        if not ints.size:
            return
        held_s = (self._buffer.nbytes // 2 + ints.size) / self.width / SAMPLE_RATE
        if held_s > self.limits.max_duration_s + 1.0:
            raise _too_long(held_s, self.limits.max_duration_s)
        self._charge_to(self._buffer.nbytes + ints.nbytes)
        self._buffer.append(ints)
        if self._listener is not None:
            self._listener(self, ints)

    def _charge_to(self, nbytes: int) -> None:
        if self._charge is not None and nbytes > self._charged:
            self._charge(nbytes - self._charged)
            self._charged = nbytes

    def window(self, start: int, end: int) -> Pcm16:
        """A copy of the samples ``[start, end)`` kept so far (safe while the decode goes on)."""
        return np.frombuffer(self._buffer.read(2 * start, 2 * end), dtype="<i2").astype(np.int16, copy=False)

    def finish(self, source_format: str) -> Audio:
        if self._resampler is not None:
            rest = np.zeros((0, self.width) if self.width > 1 else 0, np.float32)
            self.keep(self._resampler.resample_chunk(rest, last=True))
        if not self.has_audio:
            raise InvalidRequest("the uploaded audio contains no samples", field="file")
        return Audio(self._buffer.freeze(), self.rate, self.channels, source_format)

    def _check(self, source_samples: int, duration_s: float | None) -> None:
        if duration_s is not None and duration_s > self.limits.max_duration_s:
            raise _too_long(duration_s, self.limits.max_duration_s)
        if source_samples > self.limits.max_source_samples:
            raise UploadTooLarge(
                f"the audio holds more than {self.limits.max_source_samples} samples (at its sample "
                "rate, all channels); this server decodes at most that many",
                field="file",
            )


# Reserved beyond the header's length: the resampler's rounding, never a regrowth for a few samples.
_SLACK_BYTES = 2 * SAMPLE_RATE
_MIN_BYTES = 1 << 16


class Samples16:
    """16-bit samples appended block by block to an anonymous mmap.

    Not a bytearray: under ``app.engine.memory``'s tuning (no per-block mmap in malloc) a bytearray
    lives in the heap, and growing it past a neighbour copies it, so two uploads growing side by side
    held about twice their audio. An mmap grows in place (mremap), only pages written count, and it
    goes back to the operating system when the ``Audio`` made from it is freed.
    """

    def __init__(self) -> None:
        self._map: mmap.mmap | None = None
        self.nbytes = 0

    @property
    def capacity(self) -> int:
        return len(self._map) if self._map is not None else 0

    def reserve(self, nbytes: int) -> None:
        """Room for ``nbytes`` in all (address space only: a page counts once written)."""
        if nbytes <= self.capacity:
            return
        nbytes = max(nbytes, _MIN_BYTES)
        if self._map is None:
            self._map = _anonymous(nbytes)
            return
        try:
            self._map.resize(nbytes)  # mremap: the pages move, nothing is copied
        except (OSError, SystemError):  # no mremap on this platform: copy once
            grown = _anonymous(nbytes)
            grown[: self.nbytes] = self._map[: self.nbytes]
            self._map.close()
            self._map = grown

    def append(self, ints: Pcm16) -> None:
        end = self.nbytes + ints.nbytes
        if end > self.capacity:
            self.reserve(max(end, self.capacity * 3 // 2))  # no header length (or a lying one)
        assert self._map is not None
        self._map[self.nbytes : end] = np.ascontiguousarray(ints, dtype="<i2").reshape(-1).data
        self.nbytes = end

    def read(self, start: int, end: int) -> bytes:
        """A copy of bytes ``[start, end)`` (a copy: a view would stop the map from growing)."""
        return self._map[start : min(end, self.nbytes)] if self._map is not None else b""

    def freeze(self) -> Pcm16:
        """The samples, in place (the map can no longer grow)."""
        assert self._map is not None
        return np.frombuffer(self._map, dtype="<i2", count=self.nbytes // 2).astype(np.int16, copy=False)


def _anonymous(nbytes: int) -> mmap.mmap:
    # Private: a shared anonymous map (mmap's default) keeps its first size underneath, and the
    # pages past it raise SIGBUS once mremap has grown the map.
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    return mmap.mmap(-1, nbytes, flags=flags) if flags else mmap.mmap(-1, nbytes)


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
