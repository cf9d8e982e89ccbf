"""Append-only deltas from previews of a growing utterance.

Deltas are the live caption; the ``completed`` event carries the final decode's own transcript,
which OpenAI's clients (and our page) show in place of the deltas. So a word a preview misheard
costs the caption a moment of wrong text, never the transcript: the rule below only has to keep
captions from flickering with guesses, and can send words early.

A preview of audio cut mid-word changes its last words from one preview to the next. A word is
sent once the newest preview and one of at least ``agree_gap_s`` less audio (the one before, by
default) agree on it and on everything before it (case and punctuation aside), and never the
newest preview's last ``held_words`` words (at the cut). Sent text is never taken back, and does
not hold the caption up: once previews hear a sent word differently ("The Zion" becoming "There's
iron" as the audio grows), their words after the point where the sent ones align with them are
sent. ``finish`` does the same with the final decode's words, so the deltas end close to the
completed text.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

_NOT_WORD = re.compile(r"[^\w']+")


def word_key(word: str) -> str:
    """A word as previews and finals are compared: case and punctuation aside."""
    return _NOT_WORD.sub("", word.lower())


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if word_key(x) != word_key(y):
            break
        n += 1
    return n


def aligned_end(sent: list[str], final: list[str]) -> int:
    """How many of ``final``'s words the ``sent`` words stand for: up to the last final word matched
    to one of them (a word the previews misheard still counts as sent; what the final adds after
    is new); with no word in common, as many of its first words as were sent."""
    matcher = difflib.SequenceMatcher(
        None, [word_key(w) for w in sent], [word_key(w) for w in final], autojunk=False
    )
    end = min(len(sent), len(final))
    for block in matcher.get_matching_blocks():
        if block.size:
            end = block.b + block.size
    return end


@dataclass(frozen=True, slots=True)
class Stability:
    """When a preview's words are sent (see the module's docstring)."""

    agree_gap_s: float
    held_words: int


# Successive previews agree, the newest's last word held: the earliest rule whose misheard words the
# final decode's transcript replaces anyway (see bench/README.md#live-transcription).
STABILITY = Stability(agree_gap_s=0.0, held_words=1)


class Partials:
    """The words of one utterance sent so far, and what its recent previews said."""

    def __init__(self, rule: Stability = STABILITY) -> None:
        self.rule = rule
        self.sent: list[str] = []
        # (audio seconds, words) of the previews since the newest one at least agree_gap_s older
        self._recent: list[tuple[float, list[str]]] = []

    @property
    def text(self) -> str:
        return " ".join(self.sent)

    def update(self, hypothesis: str, audio_s: float) -> str:
        """Take the text of a preview of the first ``audio_s`` seconds; return the delta to send
        ("" when nothing became stable)."""
        words = hypothesis.split()
        older = [i for i, (at, _) in enumerate(self._recent) if at <= audio_s - self.rule.agree_gap_s]
        reference = self._recent[older[-1]][1] if older else []
        del self._recent[: older[-1] if older else 0]  # the reference may serve the next preview too
        self._recent.append((audio_s, words))
        stable = min(_common_prefix(reference, words), len(words) - self.rule.held_words)
        start = aligned_end(self.sent, words) if self.sent else 0
        return self._send(words[start:stable])

    def finish(self, final: str) -> str:
        """Take the final decode's text; return the last delta: its words after the sent ones."""
        words = final.split()
        return self._send(words[aligned_end(self.sent, words) if self.sent else 0 :])

    def _send(self, words: list[str]) -> str:
        if not words:
            return ""
        delta = " ".join(words)
        delta = delta if not self.sent else " " + delta
        self.sent.extend(words)
        return delta
