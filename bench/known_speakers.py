"""``python -m bench.known_speakers``: known speakers named by voice, in process, without
transcription. Conversations of 2-3 of the eval set's readers (``tests/support/known_sets.py``),
with references cut from recordings of the same readers that the conversation does not use; every
other conversation leaves one reader without a reference and adds a reference of a reader who is
absent (that could wrongly name them; so does every third). Each conversation is diarized once;
the naming is then scored at every threshold.

The threshold is chosen on the first half of the conversations (the tuning half: the middle of the
widest run of thresholds that meets both targets) and both halves are reported at it and at the
server's ``MATCH_THRESHOLD``. Also: the AMI excerpts that share speakers (references from one
excerpt, named in the other).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from app.audio.pcm import to_int16
from app.diarization import SpeakerHints, diarize
from app.diarization.known import MATCH_THRESHOLD, KnownSpeakers, assign, similarities
from app.diarization.turns import Diarization
from tests.support.diarization_sets import RATE, Recording, labelled
from tests.support.known_sets import KnownCase, known_case, named_time

THRESHOLDS = [round(t, 2) for t in np.arange(0.50, 0.951, 0.01)]
RIGHT_TARGET, WRONG_TARGET = 0.95, 0.05


@dataclass(frozen=True)
class Scored:
    case: KnownCase
    diarization: Diarization
    sim: npt.NDArray[np.float32]


@dataclass(frozen=True)
class Score:
    right: float  # share of the referenced speakers' speech under their own name
    misnamed: float  # share of all speech under someone else's name
    wrong: int  # conversations whose unreferenced reader is mostly under a name
    with_unreferenced: int

    def meets(self) -> bool:
        return self.right >= RIGHT_TARGET and self.wrong <= WRONG_TARGET * self.with_unreferenced

    def row(self, name: str, threshold: float) -> str:
        return (
            f"| {name} | {threshold:.2f} | {self.right:.1%} | {self.misnamed:.2%} | "
            f"{self.wrong}/{self.with_unreferenced} ({self.wrong / max(1, self.with_unreferenced):.0%}) |"
        )


def run(case: KnownCase) -> Scored:
    d = diarize(case.recording.samples, SpeakerHints())
    known = KnownSpeakers(case.names, tuple(to_int16(r) for r in case.references))
    return Scored(case, d, similarities(d, known))


def score(runs: list[Scored], threshold: float) -> Score:
    right = total = misnamed = speech = 0.0
    wrong = with_unreferenced = 0
    for r in runs:
        named = replace(r.diarization, names=assign(r.sim, r.case.names, threshold))
        for speaker, labels in named_time(r.case, named).items():
            seconds = sum(labels.values())
            speech += seconds
            misnamed += sum(v for k, v in labels.items() if k is not None and k != speaker)
            if speaker in r.case.names:
                right += labels.get(speaker, 0.0)
                total += seconds
            else:
                with_unreferenced += 1
                wrong += max(labels, key=lambda k: labels[k]) is not None
    return Score(right / max(total, 1e-9), misnamed / max(speech, 1e-9), wrong, with_unreferenced)


def tuned(runs: list[Scored]) -> float:
    """The middle of the widest run of thresholds that meets both targets (else the best right)."""
    ok = [t for t in THRESHOLDS if score(runs, t).meets()]
    if not ok:
        return max(THRESHOLDS, key=lambda t: score(runs, t).right)
    spans: list[list[float]] = [[ok[0], ok[0]]]
    for t in ok[1:]:
        if round(t - spans[-1][1], 2) <= 0.01:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    low, high = max(spans, key=lambda s: s[1] - s[0])
    print(f"thresholds meeting both targets on the tuning half: {low:.2f}-{high:.2f}")
    return round((low + high) / 2, 2)


def _speaker_audio(rec: Recording, speaker: str, limit_s: float = 9.0) -> npt.NDArray[np.float32]:
    """Up to ``limit_s`` of an RTTM-labelled recording where the speaker talks and no one else
    does (runs of at least 0.3 s), joined."""
    frames = len(rec.samples) // 160  # 10 ms
    mine, others = np.zeros(frames, bool), np.zeros(frames, bool)
    for start, end, who in rec.reference:
        (mine if who == speaker else others)[int(start * 100) : int(end * 100)] = True
    alone = np.flatnonzero(np.diff(np.concatenate([[0], (mine & ~others).astype(int), [0]])))
    parts = [rec.samples[a * 160 : b * 160] for a, b in alone.reshape(-1, 2) if b - a >= 30]
    joined = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return joined[: int(limit_s * RATE)]


def ami(threshold: float) -> None:
    """Excerpts of one meeting: references from one excerpt, the other excerpt named."""
    recs = {r.id: r for r in labelled()}
    pairs = [
        ("pyannote-debug-dev00", "pyannote-debug-dev01"),
        ("pyannote-debug-trn00", "pyannote-debug-trn03"),
    ]
    print(
        "\n| AMI: named / references from | speaker: time under its name (others' names) "
        "| diarized speakers' cosines to the references |\n| --- | --- | --- |"
    )
    for a, b in [*pairs, *((y, x) for x, y in pairs)]:
        target, source = recs[a], recs[b]
        shared = sorted({w for *_, w in target.reference} & {w for *_, w in source.reference})
        refs = {s: _speaker_audio(source, s) for s in shared}
        refs = {s: r for s, r in refs.items() if len(r) >= 2 * RATE}
        case = KnownCase(target, tuple(refs), tuple(refs.values()), ())
        r = run(case)
        named = replace(r.diarization, names=assign(r.sim, case.names, threshold))
        cells = []
        for speaker, labels in sorted(named_time(case, named).items()):
            seconds = sum(labels.values())
            other = sum(v for k, v in labels.items() if k is not None and k != speaker)
            mine = labels.get(speaker, 0.0)
            ref = "ref" if speaker in refs else "no ref"
            cells.append(f"{speaker} ({ref}, {seconds:.1f} s): {mine / seconds:.0%} ({other / seconds:.0%})")
        cosines = "; ".join(" ".join(f"{v:.2f}" for v in row) for row in r.sim)
        print(f"| {a[-5:]} / {b[-5:]} | {'; '.join(cells)} | {cosines} ({', '.join(case.names)}) |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.known_speakers")
    parser.add_argument("--conversations", type=int, default=60, help="in all; the first half tunes")
    args = parser.parse_args()
    started, cpu = time.monotonic(), time.process_time()
    runs = [run(known_case(seed, 2 + seed % 2)) for seed in range(args.conversations)]
    half = len(runs) // 2
    tune, held = runs[:half], runs[half:]
    same: list[float] = []
    other: list[float] = []
    for r in runs:
        majority = _majority_speakers(r)
        for k, who in enumerate(majority):
            for j, name in enumerate(r.case.names):
                (same if who == name else other).append(float(r.sim[k, j]))
    print(
        f"{len(runs)} conversations, {time.monotonic() - started:.0f} s wall, "
        f"{time.process_time() - cpu:.0f} s CPU"
    )
    print(
        f"cosine to the own reference: min {min(same):.3f}, 5th pct {np.percentile(same, 5):.3f}, "
        f"median {np.median(same):.3f}; to another's: max {max(other):.3f}, "
        f"95th pct {np.percentile(other, 95):.3f}, median {np.median(other):.3f}"
    )
    best = tuned(tune)
    print(
        "\n| set | threshold | referenced speech under the right name | speech under another's name "
        "| unreferenced reader mostly under a name |\n| --- | --- | --- | --- | --- |"
    )
    for threshold in sorted({best, MATCH_THRESHOLD}):
        print(score(tune, threshold).row(f"tuning half ({len(tune)})", threshold))
        print(score(held, threshold).row(f"held-out half ({len(held)})", threshold))
    print("\nEvery 0.05 (tuning / held-out): right name, another's name, unreferenced mostly named")
    for threshold in THRESHOLDS[::5]:
        a, b = score(tune, threshold), score(held, threshold)
        print(
            f"{threshold:.2f}: {a.right:.1%} / {b.right:.1%}, {a.misnamed:.2%} / {b.misnamed:.2%}, "
            f"{a.wrong}/{a.with_unreferenced} / {b.wrong}/{b.with_unreferenced}"
        )
    ami(MATCH_THRESHOLD)


def _majority_speakers(r: Scored) -> list[str | None]:
    """The reader who holds most of each diarized speaker's time."""
    time_of: list[dict[str, float]] = [{} for _ in range(len(r.sim))]
    for start, end, who in r.case.recording.reference:
        for t in np.arange(start, end, 0.1):
            k = r.diarization.speaker_at(t, t + 0.1)
            if k is not None and k < len(time_of):
                time_of[k][who] = time_of[k].get(who, 0.0) + 0.1
    return [max(row, key=lambda k: row[k]) if row else None for row in time_of]


if __name__ == "__main__":
    main()
