"""A file's speaker turns (the diarizer's output) and who spoke over a stretch of time."""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Turn:
    start_s: float
    end_s: float
    speaker: int  # 0, 1, ... in order of first appearance


@dataclass(frozen=True, slots=True)
class Diarization:
    turns: tuple[Turn, ...]

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
