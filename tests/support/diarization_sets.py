"""Diarization test material and scoring: conversations joined from the eval set's short clips of
different speakers (exact speaker turns), the eval set's RTTM-labelled recordings, and DER with
``pyannote.metrics`` (collar 0.25 s in all, overlap scored)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from tests.support.evalset import EVAL_DIR, Clip, clips

Turns = list[tuple[float, float, str]]  # (start_s, end_s, speaker)
Spans = list[tuple[float, float]]  # (start_s, end_s) of one speaker's speech
RATE = 16000
# The tests' conversations (seed, speakers): 2-4 speakers joined from the eval set's short clips.
CONVERSATIONS = [(seed, n) for n in (2, 3, 4) for seed in range(6)]


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


def short_clip_readers() -> dict[str, list[Path]]:
    """The short clips' readers who have at least 4 clips, and their clips."""
    by_speaker: dict[str, list[Path]] = {}
    for clip in clips("short"):
        by_speaker.setdefault(clip.raw["speaker"], []).append(clip.path)
    return {speaker: paths for speaker, paths in by_speaker.items() if len(paths) >= 4}


def trimmed(audio: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], Spans]:
    """A clip without its lead-in and tail, and its speech spans (relative to what is left)."""
    spans = speech_spans(audio)
    speech = audio[int(spans[0][0] * RATE) : int(spans[-1][1] * RATE)]
    return speech, [(s - spans[0][0], e - spans[0][0]) for s, e in spans]


@cache
def _long_readers() -> dict[str, list[npt.NDArray[np.float32]]]:
    """The long files' readers (voices the diarizer was not tuned on), each file cut at its pauses
    of 0.45 s or more into utterances of 2-8 s: up to 20 per reader who has at least 4."""
    out: dict[str, list[npt.NDArray[np.float32]]] = {}
    for clip in clips("long"):
        audio = load(clip.path)
        pieces: list[list[float]] = []
        for start, end in speech_spans(audio, pause_s=0.45):
            if pieces and end - pieces[-1][0] <= 8:
                pieces[-1][1] = end
            else:
                pieces.append([start, end])
        cut = [audio[int((s - 0.05) * RATE) : int((e + 0.05) * RATE)] for s, e in pieces if e - s >= 2]
        out.setdefault(clip.raw.get("speaker", clip.id), []).extend(cut)
    return {speaker: cut[:20] for speaker, cut in out.items() if len(cut) >= 4}


def conversation(seed: int, n_speakers: int, turns: int = 10, *, long_readers: bool = False) -> Recording:
    """Clips of ``n_speakers`` speakers (who have several clips) taking turns, joined with pauses of
    0.4-1.2 s of faint noise; no one speaks twice in a row and everyone speaks. ``long_readers``:
    one or two of them (one of two) are the long files' readers, speaking their utterances."""
    rng = random.Random(seed)
    readers = short_clip_readers()
    by_speaker = {s: [partial(load, path) for path in paths] for s, paths in readers.items()}
    pool = sorted(readers)
    chosen: list[str] = []
    if long_readers:
        unseen = _long_readers()
        wanted = 1 if n_speakers == 2 else rng.choice([1, 2])
        chosen = rng.sample(sorted(unseen), min(wanted, len(unseen)))
        by_speaker |= {s: [partial(np.copy, a) for a in utterances] for s, utterances in unseen.items()}
    chosen += rng.sample([s for s in pool if s not in chosen], n_speakers - len(chosen))
    order = list(chosen)
    rng.shuffle(order)
    while len(order) < turns:
        order.append(rng.choice([s for s in chosen if s != order[-1]]))

    def spoken() -> Iterator[tuple[str, float, npt.NDArray[np.float32], Spans]]:
        for speaker in order:
            pause_s = rng.uniform(0.4, 1.2)
            yield speaker, pause_s, *trimmed(rng.choice(by_speaker[speaker])())

    name = f"{'unseen' if long_readers else 'conv'}-{n_speakers}-{seed}"
    return _joined(name, spoken(), np.random.default_rng(seed), n_speakers)


def _joined(
    name: str,
    turns: Iterable[tuple[str, float, npt.NDArray[np.float32], Spans]],
    noise: np.random.Generator,
    n_speakers: int,
) -> Recording:
    """Turns (speaker, the pause before it, its audio, its speech spans) joined with pauses of faint
    noise, and 0.5 s of it at the end; the reference is the spans, placed."""
    pieces: list[npt.NDArray[np.float32]] = []
    reference: Turns = []
    t = 0.0
    for speaker, pause_s, audio, spans in turns:
        pause = noise.normal(0, 3e-4, int(pause_s * RATE)).astype(np.float32)
        t += len(pause) / RATE
        pieces += [pause, audio]
        reference += [(t + s, t + e, speaker) for s, e in spans]
        t += len(audio) / RATE
    pieces.append(noise.normal(0, 3e-4, RATE // 2).astype(np.float32))
    return Recording(name, np.concatenate(pieces), reference, n_speakers)


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


def _turns_of(audio: npt.NDArray[np.float32], parts: int) -> list[tuple[npt.NDArray[np.float32], Spans]]:
    """One reader's clip cut at its pauses into ``parts`` turns of at least 2 s (fewer if it is
    short), each with its speech spans (relative to the turn)."""
    spans = speech_spans(audio, pause_s=0.2)
    total = spans[-1][1] - spans[0][0]
    cuts = [0]
    for i in range(1, len(spans)):
        t, last = spans[i][0] - spans[0][0], spans[cuts[-1]][0] - spans[0][0]
        if len(cuts) < parts and t - last >= max(2.0, total / parts - 1) and total - t >= 2.0:
            cuts.append(i)
    out = []
    for a, b in zip(cuts, [*cuts[1:], len(spans)], strict=True):
        start, end = spans[a][0], spans[b - 1][1]
        out.append(
            (audio[int(start * RATE) : int(end * RATE)], [(s - start, e - start) for s, e in spans[a:b]])
        )
    return out


def unseen_voices_conversation(seed: int, n_speakers: int) -> Recording:
    """Voices the diarizer was not tuned on: the multilingual set's FLEURS readers, each clip cut
    into 2-3 turns, taking turns with 0.4-1.2 s pauses; at most one clip per language (FLEURS
    repeats readers within a language), so 2-5 speakers."""
    rng = random.Random(seed)
    by_language: dict[str, list[Clip]] = {}
    for clip in clips("multilingual"):
        by_language.setdefault(clip.raw["language"], []).append(clip)
    chosen = [rng.choice(by_language[lang]) for lang in rng.sample(sorted(by_language), n_speakers)]
    queues = {c.id: _turns_of(load(c.path), 3 if c.duration_s > 10 else 2) for c in chosen}

    def spoken() -> Iterator[tuple[str, float, npt.NDArray[np.float32], Spans]]:
        last = ""
        while options := [c for c, q in queues.items() if q and c != last]:
            last = rng.choice(options)
            audio, spans = queues[last].pop(0)
            yield last, rng.uniform(0.4, 1.2), audio, spans

    return _joined(f"voices-{n_speakers}-{seed}", spoken(), np.random.default_rng(seed), n_speakers)


def confusion(pairs: Iterable[tuple[Recording, Iterable[tuple[float, float, object]]]]) -> float:
    """Speaker confusion over recordings together: speech under the wrong speaker (pyannote's
    ``confusion``, collar 0.25) as a share of all the reference speech."""
    metric = DiarizationErrorRate(collar=0.25)
    for rec, hypothesis in pairs:
        uem = Timeline([Segment(0.0, len(rec.samples) / RATE)])
        metric(annotation(rec.reference), annotation(hypothesis), uem=uem)
    return float(metric.accumulated_["confusion"] / max(metric.accumulated_["total"], 1e-9))
