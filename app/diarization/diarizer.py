"""Audio -> speaker turns: speech stretches -> 0.8 s embeddings -> speakers -> turns.

Only speech is embedded (Silero VAD, short pauses closed). Clustering looks at windows of
``WINDOW_UNITS`` consecutive embeddings (longer windows tell voices apart better); each 0.4 s step
is then given to the closest speaker, its scores averaged with its neighbours' so that a turn
changes where the voice does, not at every uncertain step. Re-segmentation scores the steps with
the file's mean embedding taken out: what every step of a file shares (the channel, the room, a
phone line) otherwise dominates the cosine, and two callers on one line score 0.92 alike. Where
the speaker changes, units every 0.1 s around the change place it more finely than the 0.4 s
steps can. Runs in a worker thread.
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
REFINE_ROUNDS = 3
CHANGE_STRIDE = 10  # frames (0.1 s) between the units that place a speaker change
CHANGE_MARGIN_S = 0.4  # searched this far beyond the centres of the two steps either side
VAD_THRESHOLD = 0.3  # Silero speech probability (its default 0.5 misses quiet far-field speech)
VAD_BLOCK_S = 300.0
BLOCK_S = 60.0  # embed long stretches in blocks (bounds the feature buffers)
UNIT_S = (UNIT_FRAMES * HOP) / SAMPLE_RATE
UNIT_HALF = UNIT_FRAMES * HOP // 2  # samples from a unit's start to its centre


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
    labels = _smoothed_labels(units @ cluster(_windows(units, block_of), hints).T, block_of)
    # Re-segmentation: the speakers' centroids from every step now given to them (the sample of
    # clustered windows only seeded them), then each step again to the closest; file mean removed.
    mean = units.mean(axis=0)
    centred = normalise(units - mean)
    for _ in range(REFINE_ROUNDS):
        cents = normalise(np.stack([centred[labels == k].mean(axis=0) for k in np.unique(labels)]))
        labels = _smoothed_labels(centred @ cents.T, block_of)
    centres = unit_start + UNIT_HALF
    switch = (centres[:-1] + centres[1:]) // 2  # sample where step i hands over to step i + 1
    for i in np.flatnonzero((labels[:-1] != labels[1:]) & (block_of[:-1] == block_of[1:])).tolist():
        block = blocks[block_of[i]]
        at = _change_at(
            samples,
            block,
            (centres[i], centres[i + 1]),
            cents[labels[i]] - cents[labels[i + 1]],
            mean,
            encoder,
        )
        if at is not None:
            switch[i] = at
    return Diarization(_turns(blocks, switch, block_of, labels))


def _change_at(
    samples: Pcm16 | Samples,
    block: tuple[int, int],
    centres: tuple[int, int],
    contrast: npt.NDArray[np.float32],
    mean: npt.NDArray[np.float32],
    encoder: SpeakerEncoder,
) -> int | None:
    """The sample where one voice hands over to the next, between two steps' centres (and
    CHANGE_MARGIN_S beyond): units every 0.1 s, each scored ``contrast`` (first speaker's centroid
    minus the second's), split where "first before, second after" fits best."""
    margin = int(CHANGE_MARGIN_S * SAMPLE_RATE) + UNIT_HALF
    low, high = max(block[0], centres[0] - margin), min(block[1], centres[1] + margin)
    emb, starts = encoder.embed_units(_floats(samples[low:high]), CHANGE_STRIDE)
    if len(emb) < 2:
        return None
    score = np.cumsum(normalise(emb - mean) @ contrast)
    split = int((2 * score[:-1] - score[-1]).argmax())  # first speaker up to unit ``split``
    return low + UNIT_HALF + int(starts[split] + starts[split + 1]) // 2


def _turns(
    blocks: list[tuple[int, int]],
    switch: npt.NDArray[np.int64],
    block_of: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
) -> tuple[Turn, ...]:
    """Each block's samples go to its steps, step i up to ``switch[i]``; runs become turns."""
    raw: list[Turn] = []
    for b, (start, end) in enumerate(blocks):
        idx = np.flatnonzero(block_of == b)
        if not len(idx):
            continue
        bounds = [start / SAMPLE_RATE, *(switch[idx[:-1]] / SAMPLE_RATE).tolist(), end / SAMPLE_RATE]
        for i, speaker in enumerate(labels[idx].tolist()):
            if raw and raw[-1].speaker == speaker and bounds[i] - raw[-1].end_s < BRIDGE_S:
                raw[-1] = Turn(raw[-1].start_s, bounds[i + 1], speaker)
            else:
                raw.append(Turn(bounds[i], bounds[i + 1], speaker))
    order: dict[int, int] = {}
    for t in raw:
        order.setdefault(t.speaker, len(order))
    return tuple(Turn(round(t.start_s, 3), round(t.end_s, 3), order[t.speaker]) for t in raw)
