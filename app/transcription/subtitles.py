"""Segments -> srt / vtt cues that read as subtitles: at most ``max_lines`` lines of ``line_chars``
characters and ``max_cue_s`` seconds each (two lines of 42 characters and 7 s are the common
broadcast guidelines). Whisper's segments run to 15 s and 190 characters on unpunctuated speech,
so a long segment is cut at word boundaries, with each cue timed by its own words. A diarized
answer's cues say who speaks: vtt as a voice span (``<v Agent>``), srt as a prefix (``[Agent] ``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.config import SubtitleSettings
from app.engine import Segment, Word

# What a break after a word is worth: breaks after a sentence, a clause or at a pause read best,
# and a line or cue should not end on an article, a possessive, a preposition or a conjunction
# (listed for the languages below; in others only punctuation and pauses guide the breaks).
_SENTENCE_END, _CLAUSE_END, _PAUSE, _WEAK_END = 0.4, 0.25, 0.3, -0.3
_PAUSE_S = 0.3
_WEAK_WORDS = {
    language: frozenset(words.split())
    for language, words in {
        "en": "a an the my your his her its our their of to in on at by for from with into and or but as",
        "de": "der die das den dem des ein eine einen einem einer eines mein meine dein deine sein seine "
        "ihr ihre unser unsere von vom zu zum zur in im an am auf bei mit für aus nach über unter und "
        "oder aber als",
        "fr": "le la les un une des du de au aux mon ma mes ton ta tes son sa ses notre nos votre vos "
        "leur leurs à en dans sur par pour avec sans et ou mais que",
        "es": "el la los las un una unos unas mi mis tu tus su sus nuestro nuestra de del a al en con "
        "por para sin sobre y o pero que",
        "pt": "o a os as um uma uns umas meu minha seu sua seus suas de do da dos das em no na nos nas "
        "ao à com por para sem e ou mas que",
        "it": "il lo la i gli le un uno una mio mia suo sua di del della a al in nel con per su e o ma che",
        "nl": "de het een mijn zijn haar van naar in op aan met voor en of maar dat",
    }.items()
}

Fits = Callable[[int, int], bool]  # (i, j): may words[i:j] make one piece?


@dataclass(frozen=True, slots=True)
class Cue:
    start_s: float
    end_s: float
    lines: tuple[str, ...]
    speaker: str | None = None  # who speaks (a diarized answer's label)


def cues(
    segments: Sequence[Segment],
    layout: SubtitleSettings,
    language: str = "en",
    speakers: Sequence[str | None] | None = None,
) -> list[Cue]:
    """Each segment with text as one cue, or as several when it exceeds the layout (line_chars 0
    keeps one single-line cue per segment, as OpenAI's API gives them). ``language``: the text's
    (a Whisper code) for the words a line should not end on; ``speakers``: each segment's label."""
    weak = _WEAK_WORDS.get(language, frozenset())
    found: list[Cue] = []
    for k, s in enumerate(segments):
        who = speakers[k] if speakers is not None else None
        text = s.text.strip()
        words = [w for w in s.words if w.word.strip()]  # a blank line would end an srt cue
        if not text:
            continue
        if not layout.line_chars:
            found.append(Cue(s.start_s, s.end_s, (text,), who))
        elif not words:  # no word times: the segment's time, its text wrapped
            found.append(Cue(s.start_s, s.end_s, _wrap(_untimed(text), layout, weak), who))
        else:
            for piece in _cut(words, _cue_fits(words, layout), layout.line_chars * layout.max_lines, weak):
                found.append(Cue(piece[0].start_s, piece[-1].end_s, _wrap(piece, layout, weak), who))
    return found


def subtitles(
    segments: Sequence[Segment],
    layout: SubtitleSettings,
    *,
    vtt: bool,
    language: str = "en",
    speakers: Sequence[str | None] | None = None,
) -> str:
    """The cues as srt or vtt; with ``speakers`` (a label per segment) each cue names its speaker
    (the label is not counted in line_chars)."""
    lines = ["WEBVTT", ""] if vtt else []
    for i, cue in enumerate(cues(segments, layout, language, speakers), start=1):
        if not vtt:
            lines.append(str(i))
        lines.append(f"{_clock(cue.start_s, vtt)} --> {_clock(cue.end_s, vtt)}")
        text = [_escaped(line) for line in cue.lines] if vtt else list(cue.lines)
        if cue.speaker is not None:
            text[0] = f"<v {_escaped(cue.speaker)}>{text[0]}" if vtt else f"[{cue.speaker}] {text[0]}"
        lines.extend([*text, ""])
    return "\n".join(lines) + ("\n" if lines and lines[-1] != "" else "")


def _escaped(annotation: str) -> str:
    """Cue text or a voice span's annotation as WebVTT wants it: no raw ``&``, ``<`` or ``>`` (so
    no ``-->`` either, which would end the cue)."""
    return annotation.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cue_fits(words: Sequence[Word], layout: SubtitleSettings) -> Fits:
    """A cue fits in ``max_cue_s`` and wraps into ``max_lines`` lines."""

    def fits(i: int, j: int) -> bool:
        return words[j - 1].end_s - words[i].start_s <= layout.max_cue_s and (
            _lines_needed(words[i:j], layout.line_chars) <= layout.max_lines
        )

    return fits


def _wrap(words: Sequence[Word], layout: SubtitleSettings, weak: frozenset[str]) -> tuple[str, ...]:
    """A cue's text as even lines of at most ``line_chars`` (a longer word gets a line of its own)."""
    width = layout.line_chars
    lines = _cut(words, lambda i, j: len(_text(words[i:j])) <= width, width, weak)
    return tuple(_text(line) for line in lines)


def _cut(
    words: Sequence[Word], fits: Fits, chars_per_piece: int, weak: frozenset[str]
) -> list[Sequence[Word]]:
    """The fewest pieces ``words[i:j]`` that ``fits(i, j)`` (one word always does), as even in
    length as can be, with breaks after punctuation or at pauses where that costs no extra piece:
    a shortest path over the word boundaries (segments have tens of words: O(n^2) is nothing)."""
    n = len(words)
    ends = [0]  # ends[j]: characters in words[:j], each word with its leading space
    for w in words:
        ends.append(ends[-1] + len(w.word))

    def chars(i: int, j: int) -> int:
        return ends[j] - ends[i] - (len(words[i].word) - len(words[i].word.lstrip()))

    # An even length if the fewest pieces that the characters alone need were used.
    target = max(1.0, chars(0, n) / max(1, math.ceil(chars(0, n) / max(1, chars_per_piece))))
    # Evenness and breaks add less than 1.5 per piece, so a piece costing more keeps their number least.
    piece_cost = 1.5 * n + 1.0

    def break_bonus(j: int) -> float:
        """What ending a piece after words[j - 1] is worth (nothing at the end)."""
        if j == n:
            return 0.0
        word = words[j - 1].word.strip()
        last = word[-1:]
        bonus = _SENTENCE_END if last in ".?!" else _CLAUSE_END if last in ",;:" else 0.0
        bonus += _WEAK_END if word.lower() in weak else 0.0
        return bonus + (_PAUSE if words[j].start_s - words[j - 1].end_s >= _PAUSE_S else 0.0)

    best = [0.0] + [math.inf] * n
    back = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            if j - i > 1 and not fits(i, j):
                break  # a longer piece ending at j fits even less
            unevenness = 0.5 * min(1.0, ((chars(i, j) - target) / target) ** 2)
            cost = best[i] + piece_cost + unevenness - break_bonus(j)
            if cost < best[j]:
                best[j], back[j] = cost, i
    pieces: list[Sequence[Word]] = []
    j = n
    while j:
        pieces.append(words[back[j] : j])
        j = back[j]
    return pieces[::-1]


def _lines_needed(words: Sequence[Word], width: int) -> int:
    """Lines of at most ``width`` characters the words fill, wrapped greedily (which needs fewest)."""
    lines, used = 1, 0
    for w in words:
        size = len(w.word.strip())
        gap = 1 if used and w.word[:1].isspace() else 0  # scripts without spaces have no separator
        if used and used + gap + size > width:
            lines, used = lines + 1, size
        else:
            used += gap + size
    return lines


def _untimed(text: str) -> tuple[Word, ...]:
    return tuple(Word(0.0, 0.0, " " + w, 0.0) for w in text.split())


def _text(words: Sequence[Word]) -> str:
    return "".join(w.word for w in words).strip()


def _clock(seconds: float, vtt: bool) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{'.' if vtt else ','}{ms:03d}"
