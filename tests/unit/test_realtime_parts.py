"""The pieces of a live session: append-only deltas from previews, and the live segmenter."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from app.audio.chunking import ChunkingOptions
from app.config import Settings
from app.realtime.capacity import LiveCapacity
from app.realtime.decoder import LiveDecoder
from app.realtime.partials import Partials, Stability
from app.realtime.protocol import SessionConfig
from app.realtime.segmenter import LiveSegmenter, SpeechStarted, SpeechStopped
from app.realtime.utterances import Utterance
from tests.support.audiogen import silence, speechlike

OPTS = ChunkingOptions(
    prefix_padding_ms=300,
    silence_duration_ms=500,
    aggressiveness=2,
    suffix_padding_ms=300,
    min_speech_ms=250,
    max_chunk_s=28.0,
)


def test_a_word_is_sent_once_successive_previews_agree_and_never_the_last_one() -> None:
    p = Partials()
    assert p.update("And so", 0.6) == ""  # nothing to agree with yet
    assert p.update("And so my", 0.8) == "And so"
    assert p.update("and so, my fellow", 1.0) == " my"  # case and punctuation aside
    assert p.update("And so my fellow Americans", 1.2) == " fellow"
    assert p.text == "And so my fellow"


def test_a_stricter_rule_waits_for_previews_a_second_apart_and_holds_two_words() -> None:
    p = Partials(Stability(agree_gap_s=1.0, held_words=2))
    assert p.update("And so", 1.0) == ""  # nothing to agree with yet
    assert p.update("And so my", 1.6) == ""  # agrees, but with a decode of nearly the same audio
    assert p.update("And so my fellow.", 2.0) == "And so"  # agree with 1 s before; not the last two
    assert p.update("and so, my fellow Americans", 2.6) == " my"  # case and punctuation aside
    assert p.update("And so my fellow Americans ask", 3.0) == " fellow"
    assert p.text == "And so my fellow"


def test_previews_that_rewrite_sent_words_take_nothing_back_and_go_on_after_them() -> None:
    p = Partials()
    p.update("the cat sat on the", 1.0)
    assert p.update("the cat sat on the mat", 2.0) == "the cat sat on the"
    assert p.update("a hat sat on the mat", 3.0) == ""  # disagrees with the preview before
    assert p.update("a hat sat on the mat today", 4.0) == " mat"  # agrees: after "sat on the"
    assert p.update("a hat sat on the mat today and", 5.0) == " today"
    assert p.text == "the cat sat on the mat today"


@pytest.mark.parametrize(
    ("partials", "final", "deltas"),
    [
        ([], "Ask not what your country can do.", "Ask not what your country can do."),
        (
            ["ask not what your", "ask not what your country can"],
            "Ask not, what your country can do.",
            "ask not what your country can do.",
        ),
        # the previews misheard a word: it stays, and the final's words after it follow
        (
            ["ask knot what your", "ask knot what your country can"],
            "Ask not what your country can do.",
            "ask knot what your country can do.",
        ),
        # the final shares nothing: the sent words stand for as many of its first words
        (
            ["one two three", "one two three four five"],
            "Five six seven eight nine.",
            "one two three eight nine.",
        ),
    ],
)
def test_the_last_delta_is_the_final_words_after_the_sent_ones(
    partials: list[str], final: str, deltas: str
) -> None:
    p = Partials()
    sent = "".join(p.update(h, float(k)) for k, h in enumerate(partials))
    rest = p.finish(final)
    assert sent + rest == p.text == deltas


def feed_in_pieces(segmenter: LiveSegmenter, audio: np.ndarray, sizes: list[int]) -> list[object]:
    events: list[object] = []
    i, k = 0, 0
    while i < len(audio):
        events += segmenter.feed(audio[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    return events


def test_utterances_are_found_whatever_the_append_sizes() -> None:
    audio = np.concatenate([silence(1.0), speechlike(2.0), silence(1.0), speechlike(1.5), silence(1.0)])
    results = [
        feed_in_pieces(LiveSegmenter(OPTS), audio, sizes) for sizes in ([len(audio)], [1600], [333, 4801, 77])
    ]
    assert all(_same(r, results[0]) for r in results)
    events = results[0]
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["SpeechStarted", "SpeechStopped", "SpeechStarted", "SpeechStopped"]
    first, stop = events[0], events[1]
    assert isinstance(first, SpeechStarted) and isinstance(stop, SpeechStopped)
    assert 600 <= first.start_ms <= 800  # speech at 1.0 s, minus up to 300 ms of prefix
    assert 2900 <= stop.end_ms <= 3100
    assert 2.2 <= len(stop.audio) / 16000 <= 2.7  # prefix + speech + suffix


def _same(a: list[object], b: list[object]) -> bool:
    return [type(e) for e in a] == [type(e) for e in b] and all(
        getattr(x, "start_ms", None) == getattr(y, "start_ms", None)
        and getattr(x, "end_ms", None) == getattr(y, "end_ms", None)
        for x, y in zip(a, b, strict=True)
    )


def test_a_click_starts_nothing_and_long_speech_is_cut_at_a_window() -> None:
    segmenter = LiveSegmenter(OPTS)
    assert segmenter.feed(np.concatenate([silence(0.5), speechlike(0.1), silence(1.0)])) == []
    assert not segmenter.speaking
    cut = LiveSegmenter(dataclasses.replace(OPTS, max_chunk_s=3.0))
    events = cut.feed(np.concatenate([speechlike(7.0), silence(1.0)]))
    stops = [e for e in events if isinstance(e, SpeechStopped)]
    assert len(stops) >= 2 and all(len(s.audio) / 16000 <= 3.05 for s in stops)


def test_flush_hands_over_the_open_utterance() -> None:
    segmenter = LiveSegmenter(OPTS)
    segmenter.feed(np.concatenate([silence(0.5), speechlike(1.0)]))
    assert segmenter.speaking
    stopped = segmenter.flush()
    assert stopped is not None and len(stopped.audio) / 16000 >= 1.0
    assert segmenter.flush() is None and not segmenter.speaking


def test_settled_is_the_start_of_what_the_silence_will_commit() -> None:
    segmenter = LiveSegmenter(OPTS)
    segmenter.feed(np.concatenate([silence(0.5), speechlike(1.5)]))
    assert segmenter.settled() is None  # still speaking
    spoken = segmenter.speech_samples
    assert 1.7 * 16000 <= spoken <= len(segmenter.audio())  # prefix padding and speech
    segmenter.feed(silence(0.09))
    assert spoken <= segmenter.speech_samples <= spoken + 480  # (no new speech: no preview)
    assert segmenter.settled() is None  # too short a silence to start the final decode
    segmenter.feed(silence(0.15))
    settled = segmenter.settled()
    assert settled is not None  # the final decode may start: only silence can follow
    assert np.array_equal(settled, segmenter.audio())  # all of it, less than the suffix padding
    segmenter.feed(speechlike(0.5))
    assert segmenter.settled() is None  # the person spoke again
    segmenter.feed(silence(0.2))
    longer = segmenter.settled()
    assert longer is not None and len(longer) > len(settled) + 0.4 * 16000
    (stopped,) = segmenter.feed(silence(0.4))
    assert isinstance(stopped, SpeechStopped) and np.array_equal(stopped.audio[: len(longer)], longer)
    assert 0.1 * 16000 < len(stopped.audio) - len(longer) <= 0.3 * 16000  # the rest of the suffix


def test_the_last_preview_slot_is_kept_for_an_utterance_with_nothing_sent() -> None:
    """With one of two preview slots taken, a caption under way waits; first words do not."""

    async def scenario() -> tuple[int, int]:
        capacity = LiveCapacity(max_sessions=4, max_partials=2, partials=1)
        decoder = LiveDecoder(Settings(), None, capacity, lambda *a, **k: None, SessionConfig())  # type: ignore[arg-type]
        segmenter = LiveSegmenter(OPTS)
        segmenter.feed(np.concatenate([silence(0.5), speechlike(1.0)]))
        under_way, fresh = Utterance("a"), Utterance("b")
        under_way.partials.sent = ["Hello"]
        decoder.heard(under_way, segmenter)
        after_under_way = capacity.partials
        decoder.heard(fresh, segmenter)
        after_fresh = capacity.partials
        await decoder.close()  # (the preview started is cancelled: no model here)
        return after_under_way, after_fresh

    assert asyncio.run(scenario()) == (1, 2)
