"""Speaker embeddings -> speakers: spectral clustering with eigengap speaker counting.

Cost is bounded whatever the length: at most ``MAX_CLUSTERED`` windows (evenly spread over the file)
are clustered (an N x N affinity and its eigenvectors: ~0.2 s at 600), and every window is then given
to its nearest speaker centroid, which is linear in the file's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAX_CLUSTERED = 600
# A file is one voice when no split of its windows has a better silhouette than this: it sits between
# one reader split in two and two similar voices (see bench/README.md#diarization).
ONE_VOICE_SILHOUETTE = 0.17
# Silhouettes this close to the best are a tie, which the eigengap breaks (the count whose next
# eigenvalue of the affinity's Laplacian jumps most): near-best counts differ by noise, not by voices
# (see bench/README.md#diarization).
COUNT_MARGIN = 0.03
# The same test once the speakers are settled, on the steps without the file's mean embedding (the
# channel a file shares): between one voice split and two callers on one line (see the same section).
ONE_VOICE_CENTRED = 0.11
# Two settled speakers, each pair on its own, are one voice below this; on a phone line one voice's
# groups part more (see the same section).
ONE_VOICE_PAIR = 0.15
ONE_VOICE_PAIR_PHONE = 0.4


@dataclass(frozen=True, slots=True)
class SpeakerHints:
    """The request's speaker-count hints (``num_speakers`` fixes the count)."""

    num_speakers: int | None = None
    min_speakers: int = 1
    max_speakers: int = 8

    def bounds(self, n_windows: int) -> tuple[int, int]:
        if self.num_speakers is not None:
            low = high = self.num_speakers
        else:
            low, high = self.min_speakers, max(self.min_speakers, self.max_speakers)
        high = max(1, min(high, n_windows))
        return min(low, high), high


def normalise(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = (x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)).astype(
        np.float32
    )
    return out


def _affinity(emb: npt.NDArray[np.float32], keep: float) -> npt.NDArray[np.float64]:
    """Cosine affinities, each row pruned to its ``keep`` fraction of nearest neighbours, symmetric."""
    sim = np.clip(emb @ emb.T, 0.0, 1.0).astype(np.float64)
    n = len(sim)
    k = min(n, max(3, round(keep * n)))
    cut = np.partition(sim, n - k, axis=1)[:, n - k][:, None]
    pruned = np.where(sim >= cut, sim, 0.0)
    return (pruned + pruned.T) / 2


def silhouette(sim: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> float:
    """Mean silhouette under cosine distance (1 - similarity): how much closer each window is to
    its own group than to the nearest other one (-1..1; 0 means no structure)."""
    groups = np.unique(labels)
    if len(groups) < 2:
        return 0.0
    dist = 1.0 - sim
    member = labels[:, None] == groups[None, :]  # (n, k)
    sums = dist @ member
    sizes = member.sum(axis=0).astype(np.float64)
    own = member.argmax(axis=1)
    rows = np.arange(len(labels))
    a = sums[rows, own] / np.maximum(sizes[own] - 1, 1)
    others = np.where(member, np.inf, sums / sizes[None, :])
    b = others.min(axis=1)
    score = np.where(sizes[own] > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(score.mean())


def spectral_labels(
    emb: npt.NDArray[np.float32], low: int, high: int, *, keep: float = 0.25, seed: int = 0
) -> npt.NDArray[np.int64]:
    """Cluster unit-norm embeddings into between ``low`` and ``high`` groups: spectral embedding
    of a pruned cosine affinity, k-means for each count, and of the counts whose silhouette is
    within COUNT_MARGIN of the best, the one with the largest eigengap. One group when even the
    best split is no better than ONE_VOICE_SILHOUETTE."""
    n = len(emb)
    if n < 2 or high <= 1:
        return np.zeros(n, np.int64)
    aff = _affinity(emb, keep)
    d = 1.0 / np.sqrt(np.maximum(aff.sum(axis=1), 1e-12))
    laplacian = np.eye(n) - d[:, None] * aff * d[None, :]
    from scipy.cluster.vq import kmeans2  # here: scipy's import is half a second of the server's start
    from scipy.linalg import eigh

    values, vectors = eigh(laplacian, subset_by_index=[0, min(n - 1, high)])
    sim = (emb @ emb.T).astype(np.float64)
    found: dict[int, tuple[npt.NDArray[np.int64], float]] = {}
    for k in range(max(low, 2), high + 1):
        rows = normalise(vectors[:, :k].astype(np.float32)).astype(np.float64)
        _, labels = kmeans2(rows, k, minit="++", seed=seed, iter=30)
        labels = np.asarray(labels, np.int64)
        found[k] = labels, silhouette(sim, labels)
    best_score = max(score for _, score in found.values())
    if low <= 1 and best_score < ONE_VOICE_SILHOUETTE:
        return np.zeros(n, np.int64)
    near = [k for k, (_, score) in found.items() if score >= best_score - COUNT_MARGIN]
    return found[max(near, key=lambda k: (_eigengap(values, k), -k))][0]


def _eigengap(values: npt.NDArray[np.float64], k: int) -> float:
    """How much the Laplacian's (k+1)-th eigenvalue exceeds its k-th: large where the affinity
    graph falls into k groups (0 when there is no (k+1)-th)."""
    return float(values[k] - values[k - 1]) if k < len(values) else 0.0


def sounds_like_one_voice(centred: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> bool:
    """Whether the settled speakers of mean-removed steps separate no better than one voice split
    (judged on at most MAX_CLUSTERED steps, evenly spread, so the cost stays bounded)."""
    if len(np.unique(labels)) < 2:
        return False
    pick = np.linspace(0, len(labels) - 1, min(len(labels), MAX_CLUSTERED)).round().astype(np.int64)
    sample = centred[pick]
    return silhouette((sample @ sample.T).astype(np.float64), labels[pick]) < ONE_VOICE_CENTRED


def merge_one_voice_pairs(
    centred: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    least: int,
    most: int,
    *,
    phone: bool = False,
) -> npt.NDArray[np.int64]:
    """``labels`` with speakers merged pair by pair, the least separable pair first (the lowest
    silhouette of the two speakers' mean-removed steps alone): while there are more than ``most``,
    and while a pair scores under ONE_VOICE_PAIR (``phone``: ONE_VOICE_PAIR_PHONE) and more than
    ``least`` (and two) are left.
    Clustering 0.8 s steps parts one voice into several groups where the other party says little
    (a phone call's "mhm"s); pair by pair, the groups of one voice fold together and the other
    party stays apart, where a file-wide check folded both parties into one. At most MAX_CLUSTERED
    steps, evenly spread, are compared (the cost stays bounded)."""
    labels = labels.copy()
    pick = np.linspace(0, len(labels) - 1, min(len(labels), MAX_CLUSTERED)).round().astype(np.int64)
    sim = (centred[pick] @ centred[pick].T).astype(np.float64)
    while len(present := np.unique(labels[pick]).tolist()) > 1:
        pairs = [(a, b) for i, a in enumerate(present) for b in present[i + 1 :]]
        scores = []
        for a, b in pairs:
            mine = np.flatnonzero(np.isin(labels[pick], (a, b)))
            scores.append(silhouette(sim[np.ix_(mine, mine)], labels[pick][mine]))
        worst = int(np.argmin(scores))
        may = len(present) > max(2, least) and scores[worst] < (
            ONE_VOICE_PAIR_PHONE if phone else ONE_VOICE_PAIR
        )
        if len(present) <= most and not may:
            break
        labels[labels == pairs[worst][1]] = pairs[worst][0]
    return labels


def settle_count(
    centred: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], least: int, most: int, *, phone: bool
) -> npt.NDArray[np.int64]:
    """Settled speakers' labels with groups of one voice merged (``merge_one_voice_pairs``), then all
    one speaker where the rest separate no better than one voice split (if ``least`` allows one)."""
    merged = merge_one_voice_pairs(centred, labels, least, most, phone=phone)
    return np.zeros_like(merged) if least <= 1 and sounds_like_one_voice(centred, merged) else merged


def centroids(emb: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """Unit-norm mean embedding of each label present (in label order, relabelled 0..k-1)."""
    groups = [emb[labels == g].mean(axis=0) for g in np.unique(labels)]
    return normalise(np.stack(groups).astype(np.float32))


def cluster(emb: npt.NDArray[np.float32], hints: SpeakerHints) -> npt.NDArray[np.float32]:
    """Speaker centroids of a file's window embeddings, from at most MAX_CLUSTERED of them."""
    if len(emb) == 0:
        return np.zeros((0, emb.shape[1]), np.float32)
    sample = emb
    if len(emb) > MAX_CLUSTERED:
        sample = emb[np.linspace(0, len(emb) - 1, MAX_CLUSTERED).round().astype(np.int64)]
    low, high = hints.bounds(len(sample))
    return centroids(sample, spectral_labels(sample, low, high))
