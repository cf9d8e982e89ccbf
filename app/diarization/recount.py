"""The speaker count checked on whole segments: a speaker whose segments form two voices is two.

Two similar voices blur into one cluster at the scale of 0.8 s units (one reader's units score
0.39 alike at p5, different readers' 0.45 at p95). A segment (a run of one speaker's steps within
a stretch of speech) averages that noise away: over the reference turns of 48 joined
conversations, one reader's turns score 0.70 alike at p5, different readers' 0.53 at p95. So each
speaker's segments are parted in two (weighted spherical 2-means) and, where the halves sound less
alike than one voice does, the smaller half goes to another speaker it sounds more like than its
own other half, or becomes a new one. Linear in the number of segments; the embeddings are the
encoder's, not mean-removed (removing the file's mean makes the score depend on how many speakers
there are).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.diarization.clustering import normalise

# Halves of one voice score above SPLIT_BELOW, two merged voices below it; halves of fewer than
# SHORT_STEPS steps are noisier and get the lower bar; a single 0.8 s step is too noisy to judge
# (see bench/README.md#diarization).
SPLIT_BELOW = 0.6
SPLIT_BELOW_SHORT = 0.5
SHORT_STEPS = 4
MIN_STEPS = 2
# A half must also hold this share of the file's steps: among an hour's thousands of segments of
# one voice, a stray 2-step one scores under SPLIT_BELOW_SHORT by chance.
MIN_SHARE = 0.01
ROUNDS = 8  # splits and moves per file


def segments(labels: npt.NDArray[np.int64], block_of: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
    """Runs of one label within one block (a stretch of speech), as step indices."""
    cut = np.flatnonzero((labels[1:] != labels[:-1]) | (block_of[1:] != block_of[:-1])) + 1
    return np.split(np.arange(len(labels)), cut)


def _mean(emb: npt.NDArray[np.float32], weight: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    return normalise((emb * weight[:, None]).sum(axis=0).astype(np.float32))


def _halves(
    emb: npt.NDArray[np.float32], weight: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """Weighted spherical 2-means of unit-norm segment embeddings: True marks one half; and the two
    halves' mean embeddings (other, marked). Seeded deterministically in linear time: the segment
    least like the mean, and the one least like it."""
    first = int((emb @ _mean(emb, weight)).argmin())
    centres = emb[[first, int((emb @ emb[first]).argmin())]]
    side = np.zeros(len(emb), bool)
    for _ in range(20):
        new = (emb @ centres.T).argmax(axis=1) == 1
        if new.all() or not new.any() or (new == side).all():
            break
        side = new
        centres = np.stack([_mean(emb[~side], weight[~side]), _mean(emb[side], weight[side])])
    return side, centres


def _odd_half(
    emb: npt.NDArray[np.float32], weight: npt.NDArray[np.float64], least: float
) -> tuple[float, npt.NDArray[np.bool_], npt.NDArray[np.float32]] | None:
    """One speaker's segments parted in two, the smaller half (``least`` steps or more) sounding
    less alike the other than one voice does: (how alike, the half, its mean embedding). Parted
    twice, the clearer split winning: over all the segments, and over those of MIN_STEPS steps
    with each single step then joining the half it is closer to (one 0.8 s step is often an
    outlier that seeds a half too small to count)."""
    steady = weight >= MIN_STEPS
    parts = [_halves(emb, weight)[0]]
    if 2 <= steady.sum() < len(emb):
        side = np.zeros(len(emb), bool)
        side[steady], centres = _halves(emb[steady], weight[steady])
        if side.any():
            side[~steady] = (emb[~steady] @ centres.T).argmax(axis=1) == 1
            parts.append(side)
    best = None
    for side in parts:
        if weight[side].sum() > weight[~side].sum():
            side = ~side  # the smaller half is the one that may move
        steps = weight[side].sum()
        if steps < least:
            continue
        voice = _mean(emb[side], weight[side])
        alike = float(voice @ _mean(emb[~side], weight[~side]))
        if alike < (SPLIT_BELOW if steps >= SHORT_STEPS else SPLIT_BELOW_SHORT) and (
            best is None or alike < best[0]
        ):
            best = alike, side, voice
    return best


def split_merged_voices(
    units: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    block_of: npt.NDArray[np.int64],
    max_speakers: int,
) -> npt.NDArray[np.int64]:
    """``labels`` with each speaker whose segments form two voices split, at most ``max_speakers``
    in all (``units``: the steps' unit-norm embeddings, ``block_of``: each step's stretch)."""
    labels = labels.copy()
    least = max(MIN_STEPS, MIN_SHARE * len(labels))
    for _ in range(ROUNDS):
        segs = segments(labels, block_of)
        seg_label = np.array([labels[s[0]] for s in segs])
        seg_emb = normalise(np.stack([units[s].mean(axis=0) for s in segs]))
        weight = np.array([len(s) for s in segs], np.float64)
        best: tuple[float, int, npt.NDArray[np.int64], npt.NDArray[np.float32]] | None = None
        for k in np.unique(labels).tolist():
            mine = np.flatnonzero(seg_label == k)
            odd = _odd_half(seg_emb[mine], weight[mine], least)
            if odd is not None and (best is None or odd[0] < best[0]):
                best = odd[0], k, mine[odd[1]], odd[2]
        if best is None:
            break
        alike, k, small, voice = best
        moved = np.concatenate([segs[i] for i in small.tolist()])
        present = np.unique(labels)
        others = [(float(voice @ normalise(units[labels == o].mean(axis=0))), o) for o in present if o != k]
        closest = max(others, default=(-1.0, k))
        if closest[0] > alike:
            labels[moved] = closest[1]
        elif len(present) < max_speakers:
            labels[moved] = present.max() + 1
        else:
            break
    return labels
