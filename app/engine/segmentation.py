"""Where a pass's decoded text is cut into segments, and how the segments are timed.

Segments are the text's sentences (not cut after "Mr." or initials); a long sentence is also cut
after a comma, and one still over ``LONG_SEGMENT_S`` (Whisper writes some speakers' text without
punctuation) where the speaker paused. Each is timed by its words from the word alignment.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from app.engine.contract import Segment, Word

# A segment ends after a token ending a sentence (closing quotes aside) where a new sentence starts.
_SENTENCE_ENDS = (".", "!", "?")
_CLOSING_QUOTES = "\"'”’"  # noqa: RUF001
# A sentence is also cut after a comma once it has this many tokens (about 8 s of speech).
_LONG_SENTENCE_TOKENS = 32
# A segment still longer than this (unpunctuated speech: Whisper writes some speakers' text without
# punctuation) is cut at its widest pause between words.
LONG_SEGMENT_S = 10.0
_ABBREVIATIONS = frozenset(
    ["mr.", "mrs.", "ms.", "dr.", "st.", "jr.", "sr.", "prof.", "mt.", "vs.", "etc.", "no.", "e.g.", "i.e."]
)

# faster-whisper's segment dict: "tokens", "start", "end", "words" (after the word alignment) and,
# here, "stats" (the pass's avg_logprob, compression ratio and no-speech probability).
Piece = dict[str, Any]


class TextTokenizer(Protocol):
    """The part of faster-whisper's ``Tokenizer`` that cutting needs."""

    @property
    def eot(self) -> int: ...

    def decode(self, tokens: list[int]) -> str: ...


def segment_tokens(tok: TextTokenizer, tokens: list[int]) -> list[list[int]]:
    """A pass's text tokens cut into segments: sentences (after a token that ends one, where a word
    that is not lower-case follows), and a long sentence also after a comma, so a subtitle cue stays
    readable."""
    text = [t for t in tokens if t < tok.eot]
    segments: list[list[int]] = [[]]
    for k, token in enumerate(text):
        segments[-1].append(token)
        following = tok.decode([text[k + 1]]) if k + 1 < len(text) else ""
        if not following.startswith(" "):  # the next token continues this word
            continue
        piece = tok.decode([token]).rstrip()
        if piece.endswith((",", ";", ":")) and len(segments[-1]) >= _LONG_SENTENCE_TOKENS:
            segments.append([])
        elif piece.rstrip(_CLOSING_QUOTES).endswith(_SENTENCE_ENDS) and not following[1:2].islower():
            last_word = tok.decode(segments[-1]).split()[-1].lower()
            initial = len(last_word) == 2 and last_word[0].isalpha()  # "J." in "John F. Kennedy"
            if last_word not in _ABBREVIATIONS and not initial:
                segments.append([])
    return [s for s in segments if s]


def timed_segments(tok: TextTokenizer, pieces: list[Piece], with_words: bool) -> tuple[Segment, ...]:
    """A pass's sentences, timed by their words, as segments (dropping empty ones, as faster-whisper
    does)."""
    out = []
    for piece in (part for whole in pieces for part in split_at_pauses(tok, whole)):
        text = tok.decode(piece["tokens"])
        if piece["start"] == piece["end"] or not text.strip():
            continue
        avg_logprob, compression, no_speech = piece["stats"]
        out.append(
            Segment(
                start_s=float(piece["start"]),
                end_s=float(piece["end"]),
                text=text,
                tokens=tuple(piece["tokens"]),
                avg_logprob=min(0.0, float(avg_logprob)),
                compression_ratio=float(compression),
                no_speech_prob=float(no_speech),
                temperature=0.0,
                words=tuple(
                    Word(float(w["start"]), float(w["end"]), str(w["word"]), float(w["probability"]))
                    for w in (piece.get("words", ()) if with_words else ())
                ),
            )
        )
    return tuple(out)


def split_at_pauses(tok: TextTokenizer, piece: Piece) -> list[Piece]:
    """A sentence longer than ``LONG_SEGMENT_S`` cut where the speaker most likely paused, each
    part at least a quarter of its length, again until every part is short enough or cannot be cut.

    The word alignment leaves no gaps: a pause shows as the words around it lasting longer than
    words do (beyond twice the median, faster-whisper's own bound). A capitalised word (not "I")
    where Whisper wrote no punctuation often starts a sentence, which breaks near ties.
    """
    words = piece.get("words") or []
    duration = piece["end"] - piece["start"]
    if duration <= LONG_SEGMENT_S or len(words) < 2:
        return [piece]
    lengths = [w["end"] - w["start"] for w in words]
    usual = 2 * float(np.median(lengths))
    # Where each word ends in the tokens: the decoded prefix has the length of the words so far.
    ends: dict[int, int] = {}
    for j in range(1, len(piece["tokens"]) + 1):
        ends.setdefault(len(tok.decode(piece["tokens"][:j])), j)
    cuts, text = [], ""
    for k in range(1, len(words)):
        text += words[k - 1]["word"]
        head, tail = words[k - 1]["end"] - piece["start"], piece["end"] - words[k]["start"]
        if len(text) not in ends or min(head, tail) < duration / 4:
            continue
        following = words[k]["word"].strip()
        pause = words[k]["start"] - words[k - 1]["end"]
        pause += max(lengths[k - 1] - usual, 0.0) + max(lengths[k] - usual, 0.0)
        capital = following[:1].isupper() and not (following[:1] == "I" and following[1:2] in ("", "'"))
        cuts.append((pause + 0.25 * capital, k, ends[len(text)]))
    if not cuts:
        return [piece]
    _, k, j = max(cuts)
    first = {**piece, "tokens": piece["tokens"][:j], "end": words[k - 1]["end"], "words": words[:k]}
    second = {**piece, "tokens": piece["tokens"][j:], "start": words[k]["start"], "words": words[k:]}
    return split_at_pauses(tok, first) + split_at_pauses(tok, second)
