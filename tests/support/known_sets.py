"""Known-speaker material: conversations joined from the eval set's readers, with references cut
from *other* recordings of the same readers (a clip or utterance the conversation never uses), and
scoring: how much of each speaker's speech carries the right name."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, partial

import numpy as np
import numpy.typing as npt

from app.diarization.turns import Diarization
from tests.support.diarization_sets import (
    RATE,
    Recording,
    Spans,
    _joined,
    _long_readers,
    load,
    short_clip_readers,
    trimmed,
)

Loader = Callable[[], npt.NDArray[np.float32]]
REFERENCE_S = (4.0, 9.0)  # a reference's length: cut from its recording's speech


@dataclass(frozen=True)
class KnownCase:
    """A conversation, the names of its speakers that have references, and the references (names
    may include a reader absent from the conversation: a reference that should match no one)."""

    recording: Recording
    names: tuple[str, ...]
    references: tuple[npt.NDArray[np.float32], ...]
    unreferenced: tuple[str, ...]  # speakers of the conversation with no reference


@cache
def readers() -> dict[str, list[Loader]]:
    """Every reader with at least 4 recordings (short clips, or the long files' utterances)."""
    out: dict[str, list[Loader]] = {
        s: [partial(load, p) for p in paths] for s, paths in short_clip_readers().items()
    }
    out |= {s: [partial(np.copy, a) for a in cut] for s, cut in _long_readers().items()}
    return out


def reference_cut(audio: npt.NDArray[np.float32], rng: random.Random) -> npt.NDArray[np.float32]:
    """2-10 s of a recording's speech: its lead-in and tail trimmed, then a piece of 4-9 s (all of
    it when shorter)."""
    speech, _ = trimmed(audio)
    length = int(rng.uniform(*REFERENCE_S) * RATE)
    if len(speech) <= length:
        return speech
    start = rng.randrange(0, len(speech) - length)
    return speech[start : start + length]


def known_case(seed: int, n_speakers: int, turns: int = 8) -> KnownCase:
    """``n_speakers`` readers taking turns (no one twice in a row); every other seed (odd) leaves one
    of them without a reference and adds a reference of a reader who is not there (the reference
    that could wrongly name them), as does every third. Each reference comes from a recording the
    conversation does not use."""
    rng = random.Random(seed)
    pool = readers()
    chosen = rng.sample(sorted(pool), n_speakers)
    outsider = rng.choice([s for s in sorted(pool) if s not in chosen])
    reference_of = {s: rng.randrange(len(pool[s])) for s in [*chosen, outsider]}
    unreferenced = (rng.choice(chosen),) if seed % 2 else ()
    named = [s for s in chosen if s not in unreferenced] + ([outsider] if seed % 2 or seed % 3 == 0 else [])
    order = list(chosen)
    rng.shuffle(order)
    while len(order) < turns:
        order.append(rng.choice([s for s in chosen if s != order[-1]]))

    def spoken() -> Iterator[tuple[str, float, npt.NDArray[np.float32], Spans]]:
        for speaker in order:
            others = [f for i, f in enumerate(pool[speaker]) if i != reference_of[speaker]]
            yield speaker, rng.uniform(0.4, 1.2), *trimmed(rng.choice(others)())

    recording = _joined(f"known-{n_speakers}-{seed}", spoken(), np.random.default_rng(seed), n_speakers)
    references = tuple(reference_cut(pool[s][reference_of[s]](), rng) for s in named)
    return KnownCase(recording, tuple(named), references, unreferenced)


def label_at(d: Diarization, start_s: float, end_s: float) -> str | None:
    """The name the answer gives speech over [start_s, end_s] (None: a letter, no name): the name of
    whoever the diarization says speaks most there, as words are attributed."""
    speaker = d.speaker_at(start_s, end_s)
    if speaker is None or speaker >= len(d.names):
        return None
    return d.names[speaker]


def named_time(case: KnownCase, d: Diarization, step_s: float = 0.1) -> dict[str, dict[str | None, float]]:
    """For each speaker of the conversation, seconds of their speech under each name (None: none)."""
    out: dict[str, dict[str | None, float]] = {}
    for start, end, speaker in case.recording.reference:
        t = start
        while t < end:
            piece = min(step_s, end - t)
            label = label_at(d, t, t + piece)
            row = out.setdefault(speaker, {})
            row[label] = row.get(label, 0.0) + piece
            t += piece
    return out
