"""Speaker turns -> who said each word and segment; segments cut where the speaker changes."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import TypeVar

from app.diarization.turns import Diarization
from app.engine import Segment, Word

Label = TypeVar("Label")


def word_speakers(words: tuple[Word, ...], diarization: Diarization) -> list[int | None]:
    """Each word's speaker; a lone word between two runs of another speaker joins them (a turn
    change is never one 0.3 s word: it is a boundary that fell a word off)."""
    speakers = [diarization.speaker_at(w.start_s, w.end_s) for w in words]
    for i in range(1, len(speakers) - 1):
        if speakers[i - 1] == speakers[i + 1] != speakers[i]:
            speakers[i] = speakers[i - 1]
    return speakers


def split_counts(total: int, lengths: list[int]) -> list[int]:
    """``total`` items shared out over parts in proportion to ``lengths`` (all handed out)."""
    weight = sum(lengths) or 1
    bounds = [round(total * c / weight) for c in itertools.accumulate(lengths)]
    return [b - a for a, b in zip([0, *bounds[:-1]], bounds, strict=True)]


def split_segment(segment: Segment, diarization: Diarization) -> list[tuple[Segment, int | None]]:
    """The segment cut into runs of one speaker's words (itself, whole, when one speaker says it)."""
    if not segment.words:
        return [(segment, diarization.speaker_at(segment.start_s, segment.end_s))]
    speakers = word_speakers(segment.words, diarization)
    if len(set(speakers)) == 1:
        return [(segment, speakers[0])]
    return cut_runs(segment, speakers)


def cut_runs(segment: Segment, labels: Sequence[Label]) -> list[tuple[Segment, Label]]:
    """The segment cut into runs of words with one label each (``labels``: one per word), each piece
    with its share of the tokens and token logprobs."""
    runs = [(k, len(list(g))) for k, g in itertools.groupby(labels)]
    lengths, position = [], 0
    for _, n in runs:
        lengths.append(sum(len(w.word) for w in segment.words[position : position + n]))
        position += n
    # Token logprobs follow the text exactly; token ids (the same tokens) where they line up.
    lp_counts = split_counts(len(segment.logprobs), lengths)
    if len(segment.logprobs) == len(segment.tokens):
        tok_counts = lp_counts
    else:
        tok_counts = split_counts(len(segment.tokens), lengths)
    out: list[tuple[Segment, Label]] = []
    w0 = lp0 = t0 = 0
    for (label, n), n_lp, n_tok in zip(runs, lp_counts, tok_counts, strict=True):
        words = segment.words[w0 : w0 + n]
        piece = dataclasses.replace(
            segment,
            start_s=words[0].start_s,
            end_s=words[-1].end_s,
            text="".join(w.word for w in words),
            tokens=segment.tokens[t0 : t0 + n_tok],
            words=words,
            logprobs=segment.logprobs[lp0 : lp0 + n_lp],
        )
        out.append((piece, label))
        w0, lp0, t0 = w0 + n, lp0 + n_lp, t0 + n_tok
    return out
