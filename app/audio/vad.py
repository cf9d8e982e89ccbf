"""Find speech in 16 kHz audio with webrtcvad: one flag per 30 ms frame (``app.audio.chunking`` turns the
flags into chunks), and tell steady tones from speech.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import webrtcvad

from app.audio.pcm import SAMPLE_RATE, Pcm16, Samples, to_int16

FRAME_MS = 30
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
_VAD_BLOCK_FRAMES = 2000  # one minute of frames per block


# Frames quieter than this are never speech, whatever webrtcvad says: it calls a quiet room's
# hiss (around -60 dBFS) speech, which glues a whole recording into one run of chunks. The floor
# follows the recording's level down (loudest frames minus FLOOR_BELOW_PEAK_DB), so a recording
# made very quietly still has speech.
ENERGY_FLOOR_DBFS = -50.0
FLOOR_BELOW_PEAK_DB = 35.0
# webrtcvad misses speech recorded very quietly (FLEURS has sentences peaking at -50 dBFS: it heard
# 2% of one as speech); it gets the audio raised so the loud frames reach this level (at most by
# MAX_GAIN_DB, never lowered). Whisper itself needs no gain: its features are relative to the peak.
VAD_LEVEL_DBFS = -26.0
MAX_GAIN_DB = 40.0


def detect_speech(pcm: Pcm16 | Samples, aggressiveness: int) -> list[bool]:
    """One speech flag per 30 ms frame (a trailing partial frame is zero-padded) of 16-bit (or
    float) samples. Runs a block at a time, so a long upload needs no copies of its whole audio:
    one pass for the frames' levels (the energy floor and the gain), one for webrtcvad."""
    n_frames = -(-len(pcm) // FRAME_SAMPLES)
    if not n_frames:
        return []
    level = np.empty(n_frames)
    for first, frames in _blocks(pcm):
        level[first : first + len(frames)] = _levels(frames)
    floor, gain = _reference(level)
    vad = webrtcvad.Vad(aggressiveness)
    speech = np.zeros(n_frames, bool)
    for first, frames in _blocks(pcm):
        speech[first : first + len(frames)] = _vad(vad, frames, gain)
    return (speech & (level > floor)).tolist()  # type: ignore[no-any-return]


class SpeechDetector:
    """``detect_speech`` for audio that is still arriving: flags for each block of frames as soon as
    the block is complete, with the floor and gain taken from the levels heard so far (so an upload
    no longer than one block gets exactly ``detect_speech``'s flags)."""

    def __init__(self, aggressiveness: int) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._pending: list[Pcm16] = []
        self._pending_samples = 0
        self._levels: list[npt.NDArray[np.float64]] = []

    def feed(self, pcm: Pcm16) -> list[bool]:
        """Flags for the blocks that ``pcm`` (the next samples) completes."""
        self._pending.append(pcm)
        self._pending_samples += len(pcm)
        step = _VAD_BLOCK_FRAMES * FRAME_SAMPLES
        if self._pending_samples < step:
            return []
        held = np.concatenate(self._pending)
        whole = len(held) // step * step
        self._pending, self._pending_samples = [held[whole:]], len(held) - whole
        return self._flags(held[:whole])

    def finish(self) -> list[bool]:
        """Flags for what is left (a trailing partial frame is zero-padded)."""
        rest = np.concatenate(self._pending) if self._pending else np.zeros(0, np.int16)
        self._pending, self._pending_samples = [], 0
        return self._flags(rest) if len(rest) else []

    def _flags(self, pcm: Pcm16) -> list[bool]:
        flags: list[bool] = []
        for _, frames in _blocks(pcm):
            level = _levels(frames)
            self._levels.append(level)
            floor, gain = _reference(np.concatenate(self._levels))
            flags += (_vad(self._vad, frames, gain) & (level > floor)).tolist()
        return flags


def _levels(frames: Pcm16) -> npt.NDArray[np.float64]:
    """Each frame's level in dBFS."""
    rms = np.sqrt(np.mean((frames / 32768.0) ** 2, axis=1))
    return 20 * np.log10(rms + 1e-10)  # type: ignore[no-any-return]


def _reference(level: npt.NDArray[np.float64]) -> tuple[float, float]:
    """The energy floor (dBFS) and the gain for webrtcvad, from the frames' levels."""
    loudest = float(np.percentile(level, 99))
    floor = min(ENERGY_FLOOR_DBFS, loudest - FLOOR_BELOW_PEAK_DB)
    gain = 10 ** (min(max(VAD_LEVEL_DBFS - loudest, 0.0), MAX_GAIN_DB) / 20)
    return floor, gain


def _vad(vad: webrtcvad.Vad, frames: Pcm16, gain: float) -> npt.NDArray[np.bool_]:
    """webrtcvad's verdict on each frame, after ``gain``."""
    if gain != 1.0:
        frames = np.clip(frames * gain, -32768, 32767).astype(np.int16)
    raw = frames.astype("<i2", copy=False).tobytes()
    step = 2 * FRAME_SAMPLES
    return np.array(
        [vad.is_speech(raw[i * step : (i + 1) * step], SAMPLE_RATE) for i in range(len(frames))], bool
    )


def _blocks(pcm: Pcm16 | Samples) -> Iterator[tuple[int, Pcm16]]:
    """(first frame, int16 frames of shape (n, FRAME_SAMPLES)) a block at a time, zero-padded."""
    step = _VAD_BLOCK_FRAMES * FRAME_SAMPLES
    for first in range(0, -(-len(pcm) // FRAME_SAMPLES), _VAD_BLOCK_FRAMES):
        part = pcm[first * FRAME_SAMPLES : first * FRAME_SAMPLES + step]
        ints = part if part.dtype == np.int16 else to_int16(part.astype(np.float32, copy=False))
        padded: Pcm16 = np.pad(ints, (0, (-len(ints)) % FRAME_SAMPLES))
        yield first, padded.reshape(-1, FRAME_SAMPLES)


def is_tonal(samples: Samples, threshold: float = 0.95) -> bool:
    """True for beeps, hums and chords: nearly all power in a handful of frequency bins, or a
    spectrum that does not change from frame to frame.

    webrtcvad calls a steady tone speech, and Whisper then invents words over it ("Thank you.",
    slowly, through every fallback temperature). Real speech spreads its power over many harmonics
    (on the eval set the top 4 of 256 bins hold at most ~76% of a chunk's power; a pure tone > 99%),
    and its spectrum changes with every sound: each frame's spectrum against the chunk's mean has a
    cosine similarity of 0.70 (median) and at most 0.971 over the eval set's chunks, noisy
    recordings included; a held chord, mains hum or a beep scores over 0.99, white noise 0.89.
    """
    n = 512
    if len(samples) < n:
        return False
    frames = samples[: len(samples) // n * n].reshape(-1, n) * np.hanning(n)
    magnitude = np.abs(np.fft.rfft(frames, axis=1))[:, 1:]  # drop DC
    power = magnitude**2
    total = float(power.sum())
    if total <= 0:
        return False
    mean_power = power.mean(axis=0)
    if float(np.sort(mean_power)[-4:].sum()) / float(mean_power.sum()) > threshold:
        return True
    # A few frames of one vowel are steady too: only a second or more says "held note".
    return len(frames) >= _STEADY_MIN_FRAMES and _steadiness(magnitude, power.sum(axis=1)) > _STEADY


# Above every eval chunk's 0.971, below a held chord's 0.99+ (see is_tonal); over >= 1 s.
_STEADY = 0.985
_STEADY_MIN_FRAMES = SAMPLE_RATE // 512


def _steadiness(magnitude: np.ndarray, energy: np.ndarray) -> float:
    """Energy-weighted mean cosine similarity of each frame's spectrum with the mean spectrum."""
    keep = energy > energy.max() * 1e-3  # the pauses between beeps say nothing
    magnitude, energy = magnitude[keep], energy[keep]
    mean = magnitude.mean(axis=0)
    norms = np.linalg.norm(magnitude, axis=1) * float(np.linalg.norm(mean)) + 1e-12
    return float(((magnitude @ mean) / norms * energy).sum() / energy.sum())
