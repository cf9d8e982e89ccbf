"""Known speakers: diarized speakers named where their voice matches a reference recording.

A reference (2-10 s of one person, from another recording) becomes one voice, the mean of its
0.8 s unit embeddings over its speech; a diarized speaker's voice is the mean over its steps. Names
go to speakers by the assignment with the highest total cosine similarity (each name to at most
one speaker, each speaker at most one name), and stay only where the similarity reaches
``MATCH_THRESHOLD``; other speakers keep letters (see bench/README.md#known-speakers).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.audio.pcm import Pcm16
from app.diarization.clustering import normalise
from app.diarization.diarizer import speech_regions, to_floats
from app.diarization.embedder import EMBED_DIM, SpeakerEncoder, shared_encoder
from app.diarization.turns import Diarization

MAX_KNOWN_SPEAKERS = 8
REFERENCE_MIN_S, REFERENCE_MAX_S = 2.0, 10.0
# Cosine similarity of a speaker's voice to a reference at or above which they are the same
# person: the middle of 0.50-0.80, the thresholds that met both targets on the tuning half of the
# joined conversations (a margin for the int8 encoder's differences between CPUs); on the held-out
# half 0.55-0.70 met them (see bench/README.md#known-speakers).
MATCH_THRESHOLD = 0.65


@dataclass(frozen=True, slots=True)
class KnownSpeakers:
    """A request's known speakers: names and their references (16 kHz mono), in the same order."""

    names: tuple[str, ...]
    references: tuple[Pcm16, ...]


def reference_voice(samples: Pcm16, encoder: SpeakerEncoder) -> npt.NDArray[np.float32]:
    """A reference's voice: the mean unit embedding over its speech (all of it, if none is found);
    zeros (matching no one) for a reference too quiet to embed."""
    regions = speech_regions(samples) or [(0, len(samples))]
    stretches = (to_floats(samples[start:end]) for start, end in regions)
    units = [emb for emb, _ in encoder.embed_stretches(stretches) if len(emb)]
    if not units:
        return np.zeros(EMBED_DIM, np.float32)
    return normalise(np.concatenate(units).mean(axis=0))


def similarities(
    diarization: Diarization, known: KnownSpeakers, encoder: SpeakerEncoder | None = None
) -> npt.NDArray[np.float32]:
    """(speakers, references) cosine similarities of the diarized voices to the references."""
    voices = diarization.voices
    if voices is None or not len(voices) or not known.references:
        return np.zeros((0 if voices is None else len(voices), len(known.names)), np.float32)
    encoder = encoder or shared_encoder()
    refs = np.stack([reference_voice(r, encoder) for r in known.references])
    sim: npt.NDArray[np.float32] = voices @ refs.T
    return sim


def assign(
    sim: npt.NDArray[np.float32], names: tuple[str, ...], threshold: float = MATCH_THRESHOLD
) -> tuple[str | None, ...]:
    """Each speaker's name (None: no reference matches): the pairing with the highest total
    similarity, kept where a pair reaches ``threshold``."""
    found: list[str | None] = [None] * len(sim)
    from scipy.optimize import linear_sum_assignment  # here: kept out of the server's start

    rows, cols = linear_sum_assignment(sim, maximize=True)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if sim[r, c] >= threshold:
            found[r] = names[c]
    return tuple(found)


def name_speakers(
    diarization: Diarization, known: KnownSpeakers, encoder: SpeakerEncoder | None = None
) -> Diarization:
    """The diarization with its speakers named where a reference matches their voice."""
    sim = similarities(diarization, known, encoder)
    return dataclasses.replace(diarization, names=assign(sim, known.names))
