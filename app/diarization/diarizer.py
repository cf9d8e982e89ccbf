"""Audio -> speaker turns: speech stretches -> 0.8 s embeddings -> speakers -> turns.

Only speech is embedded (Silero VAD, short pauses closed), one 0.8 s unit every 0.6 s (the encoder
is most of the cost). Clustering looks at windows of ``WINDOW_UNITS`` consecutive embeddings, one
per step (longer windows tell voices apart better, more of them make the count steadier); each
step is then given to the closest speaker, its scores averaged with its neighbours' so that a turn
changes where the voice does, not at every uncertain step. Re-segmentation scores the steps with
the file's mean embedding taken out: what every step of a file shares (the channel, the room, a
phone line) otherwise dominates the cosine, and two callers on one line score 0.92 alike. The count
is then checked on whole segments (``recount``), where two voices that blur at 0.8 s part, and
pair by pair, where groups of one voice merge (a count told is reached so, from a free one). Where
the speaker changes, units on a 0.1 s grid around the change place it more finely than the steps
can. When there are two speakers, edge units hear the first and last 0.6 s of each stretch of
speech, which no step does (a short reply next to a pause). Runs in a worker thread.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.audio.pcm import SAMPLE_RATE, Pcm16, Samples
from app.diarization.clustering import SpeakerHints, cluster, normalise, settle_count
from app.diarization.embedder import (
    BATCH,
    HOP,
    UNIT_FRAMES,
    UNIT_SAMPLES,
    UNIT_STRIDE,
    SpeakerEncoder,
    narrowband,
    shared_encoder,
)
from app.diarization.recount import split_merged_voices
from app.diarization.turns import Diarization, from_steps

WINDOW_UNITS = 2  # 1.4 s of speech per clustering window
WINDOW_STEP = 1  # one window per step
SMOOTH_UNITS = 3  # steps whose speaker scores are averaged
CLOSE_PAUSE_S = 0.3  # shorter pauses belong to the speech around them
REFINE_ROUNDS = 3
VAD_THRESHOLD = 0.3  # Silero speech probability (its default 0.5 misses quiet far-field speech)
VAD_BLOCK_S = 300.0
BLOCK_S = 60.0  # embed long stretches in blocks (bounds the feature buffers)
PHONE_CHECK = 20 * SAMPLE_RATE  # from the first speech on, the audio checked for a phone line's band
# Where in its 0.8 s a unit's embedding speaks for: the LSTM's last state hears the unit's end most
# (see bench/README.md#diarization).
UNIT_HEARD = UNIT_FRAMES * HOP * 3 // 4
STEP = UNIT_STRIDE * HOP  # samples between steps
FINE = 10 * HOP  # the grid (0.1 s) on which a speaker change is placed
SUB = STEP // FINE  # grid points per step
GRID = 3 * SUB + 1  # grid points from the step before a change to the step after it
HEAD_LEADS = (2 * STEP // 3, STEP // 3)  # head units start 0.4 s and 0.2 s before a stretch
TAIL_LAGS = (0, STEP // 3)  # tail units end at a stretch's end and 0.2 s before it


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
        for span in get_speech_timestamps(to_floats(samples[offset : offset + step]), options):
            start, end = span["start"] + offset, span["end"] + offset
            if regions and start - regions[-1][1] < CLOSE_PAUSE_S * SAMPLE_RATE:
                start = regions.pop()[0]
            regions.append((start, end))
    return regions


def to_floats(part: Pcm16 | Samples) -> Samples:
    """A block as float32 in [-1, 1): uploads are held as 16-bit samples (app/audio/pcm.py)."""
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
    stretches = (to_floats(samples[start:end]) for start, end in blocks)
    for i, ((start, _), (emb, unit_starts)) in enumerate(
        zip(blocks, encoder.embed_stretches(stretches), strict=True)
    ):
        parts.append(emb)
        starts.append(unit_starts + start)
        block_ids.append(np.full(len(emb), i, np.int64))
    if not parts or not sum(len(p) for p in parts):
        return Diarization(())
    units = np.concatenate(parts)
    unit_start = np.concatenate(starts)
    block_of = np.concatenate(block_ids)
    low, high = hints.bounds(len(units))
    # A count told is reached by merging (one party's "mhm"s otherwise part the other's voice).
    wide = SpeakerHints(min_speakers=low, max_speakers=max(high, hints.max_speakers))
    labels = _smoothed_labels(units @ cluster(_windows(units, block_of), wide).T, block_of)
    # Re-segmentation: the speakers' centroids from every step now given to them (the sample of
    # clustered windows only seeded them), then each step again to the closest; file mean removed.
    mean = units.mean(axis=0)
    centred = normalise(units - mean)
    labels, cents = _refined(centred, labels, block_of)
    if low < wide.max_speakers:  # the count checked on whole segments, where two similar voices part
        split = split_merged_voices(units, labels, block_of, wide.max_speakers)
        if not (split == labels).all():
            labels, cents = _refined(centred, np.unique(split, return_inverse=True)[1], block_of)
        phone = narrowband(samples[regions[0][0] : regions[0][0] + PHONE_CHECK])
        settled = settle_count(centred, labels, low, high, phone=phone)  # groups of one voice merged
        if not (settled == labels).all():
            labels, cents = _refined(centred, np.unique(settled, return_inverse=True)[1], block_of)
    # Two voices: edge units hear the ends of the stretches, which no step does; the steps are given
    # to the same two centroids again with them in the sequence.
    edge = np.zeros(len(units), bool)
    present = np.unique(labels)
    if len(present) == 2:
        units, unit_start, block_of, edge = _with_edges(
            samples, regions, blocks, units, unit_start, block_of, encoder
        )
        centred = normalise(units - mean)
        labels = present[_smoothed_labels(centred @ cents[present].T, block_of)]
    centres = unit_start + UNIT_HEARD
    switch = (centres[:-1] + centres[1:]) // 2  # sample where step i hands over to step i + 1
    # Changes next to an edge unit stay at the steps' midpoint (the 0.1 s grid assumes coarse steps).
    changes = np.flatnonzero(
        (labels[:-1] != labels[1:]) & (block_of[:-1] == block_of[1:]) & ~edge[:-1] & ~edge[1:]
    )
    if len(changes):
        contrast = cents[labels[changes]] - cents[labels[changes + 1]]  # first speaker minus second
        grid = unit_start[changes, None] - STEP + FINE * np.arange(GRID)[None, :]
        scores = np.full(grid.shape, np.nan)
        for offset in range(-1, 3):  # the coarse steps i - 1 .. i + 2 sit on the grid at 0, SUB, ...
            k = np.clip(changes + offset, 0, len(labels) - 1)
            same = (changes + offset == k) & (block_of[k] == block_of[changes]) & ~edge[k]
            scores[same, SUB * (offset + 1)] = np.einsum("nd,nd->n", centred[k], contrast)[same]
        span = np.array([blocks[b] for b in block_of[changes].tolist()]).reshape(-1, 2)
        fits = (grid >= span[:, :1]) & (grid + UNIT_SAMPLES <= span[:, 1:])
        switch[changes] = _place_changes(samples, grid, fits, scores, contrast, mean, encoder)
    return from_steps(blocks, switch, block_of, labels, _voices(units, labels))


def _voices(units: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """Each label's mean voice over its steps (raw embeddings: a reference is another recording,
    so the file's mean is no common channel to take out); a row per label value."""
    sums = np.zeros((int(labels.max()) + 1, units.shape[1]), np.float32)
    np.add.at(sums, labels, units)
    return normalise(sums)


def _refined(
    centred: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], block_of: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Labels after REFINE_ROUNDS of giving each step to the closest centroid, and the centroids."""
    for _ in range(REFINE_ROUNDS):
        cents = normalise(np.stack([centred[labels == k].mean(axis=0) for k in np.unique(labels)]))
        labels = _smoothed_labels(centred @ cents.T, block_of)
    return labels, cents


def _with_edges(
    samples: Pcm16 | Samples,
    regions: list[tuple[int, int]],
    blocks: list[tuple[int, int]],
    units: npt.NDArray[np.float32],
    unit_start: npt.NDArray[np.int64],
    block_of: npt.NDArray[np.int64],
    encoder: SpeakerEncoder,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """The steps with edge units added at both ends of each stretch of speech. A unit's embedding
    hears the end of its 0.8 s most: a stretch's first step speaks for UNIT_HEARD into it, so no
    step hears its first 0.6 s, and its last step can end up to 0.6 s before the stretch does; a
    short turn next to a pause ("Hello?", "Yes.") sits there. Head units start HEAD_LEADS before a
    stretch, in the pause (at least CLOSE_PAUSE_S long), and so end in its first 0.6 s; tail units
    end TAIL_LAGS before its end. The steps then cover both ends on a 0.2 s grid: up to four units
    a pause, not a second pass over the file."""
    firsts = {start for start, _ in regions}  # stretches after a pause, not the 60 s blocks' joins
    lasts = {end for _, end in regions}
    last_step = np.full(len(blocks), -1, np.int64)
    np.maximum.at(last_step, block_of, unit_start)
    where, of = [], []
    for b, (start, end) in enumerate(blocks):
        if end - start < UNIT_SAMPLES:  # one unit, zero-padded, hears all of a shorter stretch
            continue
        heads = [start - lead for lead in HEAD_LEADS if start in firsts and start >= lead]
        tails = [end - UNIT_SAMPLES - lag for lag in TAIL_LAGS if end in lasts]
        for s in heads + [t for t in tails if t > last_step[b]]:
            where.append(s)
            of.append(b)
    if not where:
        return units, unit_start, block_of, np.zeros(len(units), bool)
    emb = np.concatenate(
        [
            encoder.embed_pieces([to_floats(samples[s : s + UNIT_SAMPLES]) for s in where[i : i + BATCH]])
            for i in range(0, len(where), BATCH)
        ]
    )
    all_units = np.concatenate([units, emb])
    all_start = np.concatenate([unit_start, np.array(where, np.int64)])
    all_block = np.concatenate([block_of, np.array(of, np.int64)])
    edge = np.concatenate([np.zeros(len(units), bool), np.ones(len(emb), bool)])
    order = np.lexsort((all_start, all_block))
    return all_units[order], all_start[order], all_block[order], edge[order]


def _place_changes(
    samples: Pcm16 | Samples,
    grid: npt.NDArray[np.int64],
    fits: npt.NDArray[np.bool_],
    scores: npt.NDArray[np.float64],
    contrast: npt.NDArray[np.float32],
    mean: npt.NDArray[np.float32],
    encoder: SpeakerEncoder,
) -> npt.NDArray[np.int64]:
    """The sample where each change's voice hands over to the next, to 0.1 s. Each change has a
    row of units every 0.1 s (``grid``: their starts) from the step before it to the step after,
    scored by the first speaker's centroid minus the second's (``contrast``); the change goes
    where "first before, second after" fits best. The coarse steps give four points of the row;
    bisection then scores the point halfway into the best gap until the gap is 0.1 s: 2-3 new
    units a change (each costs as much as a coarse step), not the row's 19."""

    def score(wanted: npt.NDArray[np.bool_]) -> None:
        rows, cols = np.nonzero(wanted & fits & np.isnan(scores))
        for part in range(0, len(rows), BATCH):  # a batch of pieces at a time bounds the memory
            r, c = rows[part : part + BATCH], cols[part : part + BATCH]
            emb = encoder.embed_pieces(
                [to_floats(samples[s : s + UNIT_SAMPLES]) for s in grid[r, c].tolist()]
            )
            scores[r, c] = np.einsum("nd,nd->n", normalise(emb - mean), contrast[r])

    rows = np.arange(len(grid))
    for _ in range(GRID.bit_length()):  # bisection: each round halves the gap the change lies in
        split = np.array([_split(row) for row in scores]).reshape(-1, 2)
        middle = np.zeros(grid.shape, bool)
        middle[rows, split.sum(axis=1) // 2] = True
        if not (middle & fits & np.isnan(scores)).any():
            break
        score(middle)
    split = np.array([_split(row) for row in scores]).reshape(-1, 2)
    placed: npt.NDArray[np.int64] = (grid[rows, split[:, 0]] + grid[rows, split[:, 1]]) // 2 + UNIT_HEARD
    return placed


def _split(row: npt.NDArray[np.float64]) -> tuple[int, int]:
    """The two neighbouring scored points between which "first speaker, then second" fits best."""
    points = np.flatnonzero(~np.isnan(row))
    total = np.cumsum(row[points])
    k = int((2 * total[:-1] - total[-1]).argmax())
    return int(points[k]), int(points[k + 1])
