"""A file's speaker turns (the diarizer's output, built from its labelled steps) and who spoke when."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from app.audio.pcm import SAMPLE_RATE

BRIDGE_S = 0.8  # one speaker's turns closer than this become one turn


@dataclass(frozen=True, slots=True)
class Turn:
    start_s: float
    end_s: float
    speaker: int  # 0, 1, ... in order of first appearance


@dataclass(frozen=True, slots=True)
class Diarization:
    turns: tuple[Turn, ...]
    # Each speaker's mean voice (unit-norm embeddings, row k for speaker k), to match known voices.
    voices: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)
    names: tuple[str | None, ...] = ()  # speaker k's known name, where a reference matched it

    @property
    def num_speakers(self) -> int:
        return len({t.speaker for t in self.turns})

    def speaker_at(self, start_s: float, end_s: float) -> int | None:
        """The speaker who talks most over [start_s, end_s]; the nearest turn's when none does."""
        if not self.turns:
            return None
        best, best_overlap = None, 0.0
        i = bisect.bisect_left([t.end_s for t in self.turns], start_s)
        for turn in self.turns[max(0, i - 1) :]:
            if turn.start_s > end_s:
                break
            overlap = min(end_s, turn.end_s) - max(start_s, turn.start_s)
            if overlap > best_overlap:
                best, best_overlap = turn.speaker, overlap
        if best is not None:
            return best
        middle = (start_s + end_s) / 2
        return min(self.turns, key=lambda t: max(t.start_s - middle, middle - t.end_s)).speaker


def from_steps(
    blocks: list[tuple[int, int]],
    switch: npt.NDArray[np.int64],
    block_of: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
    voices: npt.NDArray[np.float32] | None = None,
) -> Diarization:
    """Each block (a stretch of speech, in samples) goes to its steps, step i up to sample
    ``switch[i]``; one speaker's runs closer than BRIDGE_S become one turn; speakers are numbered
    in order of first appearance (``voices``, row per label, renumbered with them)."""
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
    turns = tuple(Turn(round(t.start_s, 3), round(t.end_s, 3), order[t.speaker]) for t in raw)
    return Diarization(turns, None if voices is None else voices[list(order)])
