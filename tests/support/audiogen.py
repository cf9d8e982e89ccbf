"""Test audio made in code (no binary fixtures): silence, tones, noise, speech-like bursts, and
headers that lie about their audio."""

from __future__ import annotations

import io
import struct

import numpy as np
import numpy.typing as npt
import soundfile as sf

RATE = 16000
Samples = npt.NDArray[np.float32]


def silence(seconds: float) -> Samples:
    return np.zeros(int(seconds * RATE), np.float32)


def tone(seconds: float, hz: float = 440.0, level: float = 0.3) -> Samples:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def white_noise(seconds: float, level: float = 0.1, seed: int = 0) -> Samples:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(int(seconds * RATE))).astype(np.float32).clip(-1, 1)


def speechlike(seconds: float, seed: int = 1) -> Samples:
    """Voiced, syllable-rate modulated harmonics: enough for webrtcvad to call it speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 15))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    noise = 0.02 * rng.standard_normal(len(t))
    return (0.2 * voiced * envelope + noise).astype(np.float32)


def wav_bytes(samples: Samples, rate: int = RATE, subtype: str = "PCM_16", channels: int = 1) -> bytes:
    data = np.repeat(samples[:, None], channels, axis=1) if channels > 1 else samples
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def pcm_bytes(samples: Samples, big_endian: bool = False) -> bytes:
    ints = (np.clip(samples, -1, 1) * 32767).astype(">i2" if big_endian else "<i2")
    return ints.tobytes()


def one_hz_wav(frames: int = 14400) -> bytes:
    """A 28 KB WAV whose header says 1 Hz: "4 hours" that would be resampled 16000-fold."""
    fmt = struct.pack("<HHIIHH", 1, 1, 1, 2, 2, 16)
    data = bytes(2 * frames)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + (b"data" + struct.pack("<I", len(data)) + data)
    )


def unknown_length(flac: bytes) -> bytes:
    """The same FLAC with STREAMINFO's total-samples field zeroed ("unknown"): only decoding tells."""
    out = bytearray(flac)
    at = 8 + 13  # STREAMINFO data starts at 8; its 36-bit sample count starts in the low nibble of byte 13
    out[at] &= 0xF0
    out[at + 1 : at + 5] = bytes(4)
    return bytes(out)
