"""Audio -> speaker turns: speech stretches -> 0.8 s embeddings -> speakers -> turns.

Only speech is embedded (Silero VAD, short pauses closed). Clustering looks at windows of
``WINDOW_UNITS`` consecutive embeddings (longer windows tell voices apart better); each 0.4 s step
is then given to the closest speaker, its scores averaged with its neighbours' so that a turn
changes where the voice does, not at every uncertain step. Runs in a worker thread.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.audio import SAMPLE_RATE, Pcm16, Samples
from app.diarization.clustering import SpeakerHints, cluster, normalise
from app.diarization.embedder import HOP, UNIT_FRAMES, SpeakerEncoder, shared_encoder
from app.diarization.turns import Diarization, Turn

WINDOW_UNITS = 3  # 1.6 s of speech per clustering window
WINDOW_STEP = 2  # 0.8 s between windows
SMOOTH_UNITS = 3  # steps whose speaker scores are averaged
CLOSE_PAUSE_S = 0.3  # shorter pauses belong to the speech around them
BRIDGE_S = 0.8  # one speaker's turns closer than this become one turn
REFINE_ROUNDS = 2
VAD_THRESHOLD = 0.3  # Silero speech probability (its default 0.5 misses quiet far-field speech)
VAD_BLOCK_S = 300.0
BLOCK_S = 60.0  # embed long stretches in blocks (bounds the feature buffers)
UNIT_S = (UNIT_FRAMES * HOP) / SAMPLE_RATE


def speech_regions(samples: Pcm16 | Samples) -> list[tuple[int, int]]:
    """Speech stretches in samples: Silero VAD (faster-whisper's bundled model; far fewer false
    alarms than webrtcvad on quiet far-field meetings), read in blocks to bound its buffers."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # only where diarization runs

    options = VadOptions(
        threshold=VAD_THRESHOLD,
        min_silence_duration_ms=int(CLOSE_PAUSE_S * 1000),
        speech_pad_ms=30,
        min_speech_duration_ms=100,
    )
    regions: list[tuple[int, int]] = []
    step = int(VAD_BLOCK_S * SAMPLE_RATE)
    for offset in range(0, len(samples), step):
        for span in get_speech_timestamps(_floats(samples[offset : offset + step]), options):
            start, end = span["start"] + offset, span["end"] + offset
            if regions and start - regions[-1][1] < CLOSE_PAUSE_S * SAMPLE_RATE:
                start = regions.pop()[0]
            regions.append((start, end))
    return regions


def _floats(part: Pcm16 | Samples) -> Samples:
    """A block as float32 in [-1, 1): uploads are held as 16-bit samples (app/audio.py)."""
    if part.dtype == np.int16:
        return part.astype(np.float32) / np.float32(32768.0)
    return part.astype(np.float32, copy=False)


def _blocks(regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    size = int(BLOCK_S * SAMPLE_RATE)
    return [(b, min(b + size, end)) for start, end in regions for b in range(start, end, size)]


def _windows(units: npt.NDArray[np.float32], block_of: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """Mean embeddings of WINDOW_UNITS consecutive units of one block, every WINDOW_STEP."""
    out = []
    for b in np.unique(block_of):
        idx = np.flatnonzero(block_of == b)
        for i in range(0, max(1, len(idx) - WINDOW_UNITS + 1), WINDOW_STEP):
            out.append(units[idx[i : i + WINDOW_UNITS]].mean(axis=0))
    return normalise(np.stack(out))


def _smoothed_labels(
    scores: npt.NDArray[np.float32], block_of: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    labels = np.empty(len(scores), np.int64)
    kernel = np.ones(SMOOTH_UNITS, np.float32) / SMOOTH_UNITS
    for b in np.unique(block_of):
        idx = np.flatnonzero(block_of == b)
        block = scores[idx]
        if len(idx) >= SMOOTH_UNITS:
            block = np.stack(
                [np.convolve(block[:, k], kernel, mode="same") for k in range(block.shape[1])], 1
            )
        labels[idx] = block.argmax(axis=1)
    return labels


def diarize(
    samples: Pcm16 | Samples,
    hints: SpeakerHints,
    *,
    encoder: SpeakerEncoder | None = None,
) -> Diarization:
    """Who speaks when in 16 kHz mono audio (16-bit or float samples)."""
    encoder = encoder or shared_encoder()
    regions = speech_regions(samples)
    blocks = _blocks(regions)
    parts, starts, block_ids = [], [], []
    for i, (start, end) in enumerate(blocks):
        emb, unit_starts = encoder.embed_units(_floats(samples[start:end]))
        parts.append(emb)
        starts.append(unit_starts + start)
        block_ids.append(np.full(len(emb), i, np.int64))
    if not parts or not sum(len(p) for p in parts):
        return Diarization(())
    units = np.concatenate(parts)
    unit_start = np.concatenate(starts)
    block_of = np.concatenate(block_ids)
    cents = cluster(_windows(units, block_of), hints)
    labels = _smoothed_labels(units @ cents.T, block_of)
    for _ in range(REFINE_ROUNDS):
        # Re-segmentation: the speakers' centroids from every step now given to them, then each
        # step again to the closest (the sample of clustered windows only seeded them).
        cents = np.stack(
            [units[labels == k].mean(axis=0) if (labels == k).any() else c for k, c in enumerate(cents)]
        )
        labels = _smoothed_labels(units @ normalise(cents).T, block_of)
    return Diarization(_turns(blocks, unit_start, block_of, labels))


def _turns(
    blocks: list[tuple[int, int]],
    unit_start: npt.NDArray[np.int64],
    block_of: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
) -> tuple[Turn, ...]:
    """Each block's samples go to the unit whose centre is nearest; runs become turns."""
    raw: list[Turn] = []
    centres = (unit_start + UNIT_S * SAMPLE_RATE / 2) / SAMPLE_RATE
    for b, (start, end) in enumerate(blocks):
        idx = np.flatnonzero(block_of == b)
        if not len(idx):
            continue
        c, lab = centres[idx], labels[idx]
        # Switch speaker halfway between two units' centres.
        bounds = [start / SAMPLE_RATE, *((c[1:] + c[:-1]) / 2).tolist(), end / SAMPLE_RATE]
        for i, speaker in enumerate(lab.tolist()):
            if raw and raw[-1].speaker == speaker and bounds[i] - raw[-1].end_s < BRIDGE_S:
                raw[-1] = Turn(raw[-1].start_s, bounds[i + 1], speaker)
            else:
                raw.append(Turn(bounds[i], bounds[i + 1], speaker))
    order: dict[int, int] = {}
    for t in raw:
        order.setdefault(t.speaker, len(order))
    return tuple(Turn(round(t.start_s, 3), round(t.end_s, 3), order[t.speaker]) for t in raw)
