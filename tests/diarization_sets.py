"""Diarization test material and scoring: conversations joined from the eval set's short clips of
different speakers (exact speaker turns), the eval set's RTTM-labelled recordings, and DER with
``pyannote.metrics`` (collar 0.25 s in all, overlap scored)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from tests.evalset import EVAL_DIR, clips

Turns = list[tuple[float, float, str]]  # (start_s, end_s, speaker)
RATE = 16000


@dataclass(frozen=True)
class Recording:
    id: str
    samples: npt.NDArray[np.float32]
    reference: Turns
    speakers: int


def load(path: Path) -> npt.NDArray[np.float32]:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    mono: npt.NDArray[np.float32] = data.mean(axis=1).astype(np.float32)
    return mono if rate == RATE else np.asarray(soxr.resample(mono, rate, RATE), np.float32)


def speech_spans(samples: npt.NDArray[np.float32], pause_s: float = 0.5) -> list[tuple[float, float]]:
    """A clip's speech (10 ms frames within 30 dB of its loudest and 12 dB over its noise floor),
    split where it pauses for ``pause_s`` or more: what an annotator would mark as turns."""
    n = len(samples) // 160
    level = 20 * np.log10(np.sqrt((samples[: n * 160].reshape(n, 160) ** 2).mean(axis=1)) + 1e-9)
    loud = np.flatnonzero(level > max(level.max() - 30, np.percentile(level, 10) + 12))
    spans: list[list[int]] = [[loud[0], loud[0] + 1]]
    for frame in loud[1:].tolist():
        if frame - spans[-1][1] >= pause_s * 100:
            spans.append([frame, frame + 1])
        else:
            spans[-1][1] = frame + 1
    return [(s / 100, e / 100) for s, e in spans]


def conversation(seed: int, n_speakers: int, turns: int = 10) -> Recording:
    """Clips of ``n_speakers`` speakers (who have several clips) taking turns, joined with pauses of
    0.4-1.2 s of faint noise; no one speaks twice in a row and everyone speaks."""
    rng = random.Random(seed)
    by_speaker: dict[str, list[Path]] = {}
    for clip in clips("short"):
        by_speaker.setdefault(clip.raw["speaker"], []).append(clip.path)
    pool = sorted(s for s, paths in by_speaker.items() if len(paths) >= 4)
    chosen = rng.sample(pool, n_speakers)
    order = list(chosen)
    rng.shuffle(order)
    while len(order) < turns:
        order.append(rng.choice([s for s in chosen if s != order[-1]]))
    noise = np.random.default_rng(seed)
    pieces: list[npt.NDArray[np.float32]] = []
    reference: Turns = []
    t = 0.0
    for speaker in order:
        pause = noise.normal(0, 3e-4, int(rng.uniform(0.4, 1.2) * RATE)).astype(np.float32)
        audio = load(rng.choice(by_speaker[speaker]))
        spans = speech_spans(audio)
        speech = audio[int(spans[0][0] * RATE) : int(spans[-1][1] * RATE)]  # no lead-in or tail
        pieces += [pause, speech]
        t += len(pause) / RATE
        reference += [(t + s - spans[0][0], t + e - spans[0][0], speaker) for s, e in spans]
        t += len(speech) / RATE
    pieces.append(noise.normal(0, 3e-4, RATE // 2).astype(np.float32))
    return Recording(f"conv-{n_speakers}-{seed}", np.concatenate(pieces), reference, n_speakers)


def read_rttm(path: Path) -> Turns:
    turns = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start, duration = float(parts[3]), float(parts[4])
            turns.append((start, start + duration, parts[7]))
    return turns


def labelled(ids: Iterable[str] | None = None) -> list[Recording]:
    """The eval set's diarization recordings (AMI excerpts, the two-party conversation)."""
    out = []
    for clip in clips("diarization"):
        if ids is None or clip.id in ids:
            out.append(
                Recording(
                    clip.id, load(clip.path), read_rttm(EVAL_DIR / clip.raw["rttm"]), clip.raw["speakers"]
                )
            )
    return out


def annotation(turns: Iterable[tuple[float, float, object]]) -> Annotation:
    a = Annotation()
    for i, (start, end, speaker) in enumerate(turns):
        if end > start:
            a[Segment(start, end), i] = str(speaker)
    return a


def total_der(pairs: Iterable[tuple[Recording, Iterable[tuple[float, float, object]]]]) -> float:
    """DER over recordings and their hypotheses together (errors summed over all the reference
    speech), each scored over its whole length."""
    metric = DiarizationErrorRate(collar=0.25)
    for rec, hypothesis in pairs:
        uem = Timeline([Segment(0.0, len(rec.samples) / RATE)])
        metric(annotation(rec.reference), annotation(hypothesis), uem=uem)
    return float(abs(metric))
