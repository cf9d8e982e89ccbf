"""Subtitle cues from hand-made segments: limits, fewest cues, where they break, fallbacks."""

from __future__ import annotations

import html
import io
import textwrap

import pytest
import srt
import webvtt

from app.config import SubtitleSettings
from app.engine import Segment, Word
from app.transcription.subtitles import Cue, cues, subtitles

TEXT = (
    "it was the best of times it was the worst of times it was the age of wisdom it was the age "
    "of foolishness it was the epoch of belief it was the epoch of incredulity it was the season "
    "of light it was the season of darkness"
)


def timed(
    text: str, start_s: float = 2.0, word_s: float = 0.35, pauses: dict[int, float] | None = None
) -> list[Word]:
    """One word every ``word_s`` seconds, with extra silence before the words in ``pauses``."""
    words, t = [], start_s
    for i, w in enumerate(text.split()):
        t += (pauses or {}).get(i, 0.0)
        words.append(Word(t, t + word_s * 0.8, " " + w, 0.9))
        t += word_s
    return words


def segment(words: list[Word], text: str | None = None) -> Segment:
    return Segment(
        start_s=words[0].start_s if words else 0.0,
        end_s=words[-1].end_s if words else 1.0,
        text="".join(w.word for w in words) if text is None else text,
        tokens=(),
        avg_logprob=-0.2,
        compression_ratio=1.2,
        no_speech_prob=0.01,
        temperature=0.0,
        words=tuple(words),
    )


def greedy_cue_count(words: list[Word], layout: SubtitleSettings) -> int:
    """The fewest cues, found the plain way: fill each cue while it still wraps (textwrap) into
    its lines and lasts no longer than allowed."""
    count, first = 1, 0
    for k in range(1, len(words)):
        text = "".join(w.word for w in words[first : k + 1]).strip()
        too_long = words[k].end_s - words[first].start_s > layout.max_cue_s
        if too_long or len(textwrap.wrap(text, layout.line_chars)) > layout.max_lines:
            count, first = count + 1, k
    return count


def text_of(cue: Cue) -> str:
    return " ".join(cue.lines)


@pytest.mark.parametrize(
    "layout",
    [
        SubtitleSettings(),
        SubtitleSettings(line_chars=32, max_lines=1, max_cue_s=3.0),
        SubtitleSettings(line_chars=20, max_lines=3, max_cue_s=10.0),
        SubtitleSettings(line_chars=80, max_lines=2, max_cue_s=2.5),  # the time limit decides
    ],
)
def test_a_long_segment_becomes_the_fewest_cues_that_fit_timed_by_their_words(
    layout: SubtitleSettings,
) -> None:
    words = timed(TEXT)
    found = cues([segment(words)], layout)
    assert len(found) == greedy_cue_count(words, layout) > 1
    assert " ".join(text_of(c) for c in found) == TEXT
    starts = {w.start_s for w in words}
    ends = {w.end_s for w in words}
    for cue in found:
        assert cue.start_s in starts and cue.end_s in ends
        assert cue.end_s - cue.start_s <= layout.max_cue_s
        assert 1 <= len(cue.lines) <= layout.max_lines
        assert all(0 < len(line) <= layout.line_chars for line in cue.lines)
    assert [c.start_s for c in found] == sorted(c.start_s for c in found)


def first_cue_text(text: str, pauses: dict[int, float] | None = None) -> str:
    return text_of(cues([segment(timed(text, pauses=pauses))], SubtitleSettings())[0])


def test_a_cue_breaks_after_punctuation_or_at_a_pause_where_that_adds_no_cue() -> None:
    plain = "we walked down to the old harbour in the morning light and then we sat on the wall by the boats"
    assert 84 < len(plain) <= 168  # two cues either way
    first = first_cue_text(plain)
    comma = plain.replace("harbour", "harbour,")
    assert first != "we walked down to the old harbour"  # so it is the comma that moves the break
    assert first_cue_text(comma) == "we walked down to the old harbour,"
    pause_before = plain.split().index("in")
    assert first_cue_text(plain, pauses={pause_before: 0.6}) == "we walked down to the old harbour"


def test_lines_are_even_and_do_not_end_on_an_article() -> None:
    text = "they talked quietly about the journey ahead of them all night long"  # even: "...about the"
    (cue,) = cues([segment(timed(text, word_s=0.3))], SubtitleSettings())
    assert len(cue.lines) == 2 and " ".join(cue.lines) == text
    assert abs(len(cue.lines[0]) - len(cue.lines[1])) <= 10
    assert cue.lines[0].split()[-1] != "the"


def test_line_chars_0_keeps_one_unwrapped_cue_per_segment() -> None:
    words = timed(TEXT)
    segments = [segment(words[:30]), segment([], text="  "), segment(words[30:])]
    found = cues(segments, SubtitleSettings(line_chars=0))
    expected = [(s.start_s, s.end_s, (s.text.strip(),)) for s in (segments[0], segments[2])]
    assert [(c.start_s, c.end_s, c.lines) for c in found] == expected


def test_a_segment_without_word_times_keeps_its_time_and_is_wrapped() -> None:
    text = TEXT[:150].strip()
    (cue,) = cues([segment([], text=" " + text)], SubtitleSettings())
    assert (cue.start_s, cue.end_s) == (0.0, 1.0)
    assert " ".join(cue.lines) == text and all(len(line) <= 42 for line in cue.lines)


def test_blank_words_make_no_blank_lines() -> None:
    words = timed("one two three four")
    words[2] = Word(words[2].start_s, words[2].end_s, " ", 0.5)
    found = cues([segment(words)], SubtitleSettings(line_chars=3, max_lines=1))
    assert [line for c in found for line in c.lines] == ["one", "two", "four"]


def test_a_word_longer_than_a_line_gets_a_line_of_its_own() -> None:
    long_word = "x" * 60
    found = cues([segment(timed(f"a {long_word} b c"))], SubtitleSettings())
    assert [line for c in found for line in c.lines] == ["a", long_word, "b c"]


def test_srt_keeps_the_cue_lines() -> None:
    words = timed(TEXT)
    body = subtitles([segment(words)], SubtitleSettings(), vtt=False)
    parsed = list(srt.parse(body))
    found = cues([segment(words)], SubtitleSettings())
    assert [tuple(p.content.split("\n")) for p in parsed] == [c.lines for c in found]
    assert [p.index for p in parsed] == list(range(1, len(found) + 1))


def test_vtt_cue_text_is_escaped_and_parses_back() -> None:
    words = timed("AT&T said a <b> tag --> is text")
    body = subtitles([segment(words)], SubtitleSettings(), vtt=True, speakers=["Q&A <lead>"])
    (caption,) = webvtt.from_buffer(io.StringIO(body)).captions
    assert "-->" not in body.split("\n", 3)[3]  # only the timing line holds the arrow
    # webvtt-py keeps escapes as written; a player decodes them as HTML character references
    assert html.unescape(caption.voice or "") == "Q&A <lead>"
    assert html.unescape(caption.text) == "AT&T said a <b> tag --> is text"


@pytest.mark.parametrize(("language", "weak"), [("de", "und"), ("fr", "et"), ("es", "y"), ("pt", "e")])
def test_lines_do_not_end_on_a_weak_word_in_other_languages(language: str, weak: str) -> None:
    """Two even lines could end after "cccc" or after the conjunction: the language's list decides."""
    words = timed(f"aaaa bbbb cccc {weak} dddd eeee ffff", word_s=0.2)
    layout = SubtitleSettings(line_chars=18, max_lines=1)
    found = cues([segment(words)], layout, language)
    assert len(found) == 2 and not any(c.lines[-1].endswith(f" {weak}") for c in found), found


def test_scripts_without_spaces_fill_their_lines() -> None:
    """Whisper's words in Chinese or Japanese carry no leading space: no separator is counted."""
    words = [Word(0.2 * i, 0.2 * i + 0.15, "字", 0.9) for i in range(30)]
    found = cues([segment(words)], SubtitleSettings(line_chars=10, max_lines=2, max_cue_s=60), "zh")
    assert len(found) == 2 and all(len(line) <= 10 and " " not in line for c in found for line in c.lines)
    assert "".join(line for c in found for line in c.lines) == "字" * 30
