"""Speech a window's decode left out is decoded again on its own (``transcription.recovery``)."""

from __future__ import annotations

import dataclasses

import anyio
import numpy as np

from app.audio.chunking import Chunk
from app.audio.feed import ChunkFeed
from app.audio.pcm import SAMPLE_RATE, Audio, Samples
from app.engine import DecodeOptions, DecodeResult, Segment, Word
from app.engine.quality import SURE_SPEECH
from app.transcription.recovery import MISSED_S, missed_stretches, with_recovered
from app.transcription.result import ChunkResult
from app.transcription.windows import WindowRunner
from tests.support.audiogen import silence, tone
from tests.support.fakes import SLOT_S, FakeEngine


def seconds(start_s: float, end_s: float, speech_s: float | None = None) -> Chunk:
    speech = None if speech_s is None else int(speech_s * SAMPLE_RATE)
    return Chunk(int(start_s * SAMPLE_RATE), int(end_s * SAMPLE_RATE), speech)


def segment(start_s: float, end_s: float, text: str = " w", no_speech: float = 0.01) -> Segment:
    return Segment(start_s, end_s, text, (1,), -0.2, 1.2, no_speech, 0.0, (Word(start_s, end_s, text, 0.9),))


def result(*segments: Segment) -> DecodeResult:
    return DecodeResult(tuple(segments), "en", 1.0)


def test_a_chunk_or_a_stretch_of_one_without_text_is_missed() -> None:
    # window from 10 s: chunks 10-14 s (speech from 10.3 s), 15-19 s and 20-28 s
    window = [seconds(10, 14, 10.3), seconds(15, 19), seconds(20, 28)]
    # text covers the first chunk, nothing of the second, the third but 23-26 s (window-relative times)
    transcript = result(segment(0.3, 3.9), segment(10.0, 13.0), segment(16.0, 18.0))
    stretches = [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in missed_stretches(transcript, window)]
    assert stretches == [(15.0, 19.0), (22.8, 26.2)]  # clipped to the chunk, 0.2 s either side
    # a gap shorter than MISSED_S, or all of a chunk covered: nothing
    short = MISSED_S - 0.1
    assert missed_stretches(result(segment(0.3, 2.0), segment(2.0 + short, 4.0)), window[:1]) == []
    assert missed_stretches(result(segment(0.0, 18.0)), window) == []


def test_only_sure_speech_is_added_in_place() -> None:
    transcript = result(segment(0.0, 2.0, " a"), segment(8.0, 9.0, " c"))
    stretches = [(3 * SAMPLE_RATE, 6 * SAMPLE_RATE), (10 * SAMPLE_RATE, 12 * SAMPLE_RATE)]
    redone = [
        result(segment(0.5, 2.5, " b")),
        result(segment(0.0, 1.0, " noise", no_speech=SURE_SPEECH + 0.1)),
    ]
    merged = with_recovered(transcript, SAMPLE_RATE, stretches, redone)
    assert merged.text == "a b c"  # the noise's words dropped; b at its place on the window's timeline
    b = merged.segments[1]
    assert (b.start_s, b.end_s) == (2.5, 4.5) and (b.words[0].start_s, b.words[0].end_s) == (2.5, 4.5)
    assert with_recovered(transcript, 0, stretches[1:], redone[1:]) is transcript


def test_a_sentence_the_alignment_put_late_is_not_added_twice() -> None:
    # "Lobsters and lobsters." spoken at 0.5-2.6 s, aligned to 4.1-5.2 s: its stretch comes back
    # with the same words, which are not added again; the stretch's other words are
    transcript = result(segment(4.1, 5.2, " Lobsters and lobsters."), segment(9.0, 15.0, " A book."))
    redone = [result(segment(0.3, 2.4, " Lobsters and lobsters"), segment(2.4, 2.6, " crayfish"))]
    merged = with_recovered(transcript, 0, [(int(0.2 * SAMPLE_RATE), int(2.8 * SAMPLE_RATE))], redone)
    assert merged.text == "crayfish Lobsters and lobsters. A book."


class QuietVoiceEngine(FakeEngine):
    """Hears only what is at least a third as loud as the loudest of what it is given (a quieter
    voice after a louder one goes unheard), one segment per run of words, each call's words its
    own ("c<call>w<k>")."""

    def transcribe(self, samples: Samples, options: DecodeOptions) -> DecodeResult:
        heard = super().transcribe(samples, options)
        slot = int(SLOT_S * SAMPLE_RATE)
        levels = [
            float(np.sqrt(np.mean(samples[k * slot : (k + 1) * slot] ** 2)))
            for k in range(len(samples) // slot)
        ]
        loud = [
            dataclasses.replace(w, word=f" c{self.calls}{w.word.strip()}")
            for w in (heard.segments[0].words if heard.segments else ())
            if levels[round(w.start_s / SLOT_S)] >= max(levels) / 3
        ]
        runs: list[list[Word]] = []
        for w in loud:
            if runs and w.start_s == runs[-1][-1].end_s:
                runs[-1].append(w)
            else:
                runs.append([w])
        said = [dataclasses.replace(segment(run[0].start_s, run[-1].end_s), words=tuple(run)) for run in runs]
        return result(*(dataclasses.replace(s, text="".join(w.word for w in s.words)) for s in said))


def test_a_quieter_voice_the_window_left_out_is_decoded_again() -> None:
    # a loud talker (0.5-4.5 s), a quiet one (5.5-8.5 s), the loud one again (9.5-11.5 s): one window
    samples = np.concatenate(
        [silence(0.5), tone(4), silence(1), tone(3, level=0.05), silence(1), tone(2), silence(0.5)]
    )
    chunks = [seconds(0.3, 4.8, 0.5), seconds(5.2, 8.8, 5.5), seconds(9.2, 11.8, 9.5)]
    engine = QuietVoiceEngine()

    async def collect() -> list[ChunkResult]:
        runner = WindowRunner(1)
        feed = ChunkFeed.complete(Audio.from_float(samples), chunks)
        options = DecodeOptions(language="en", prompt="Names:")
        run = runner.run(engine, feed, options, condition_on_previous_text=True, window_s=29.5)
        return [r async for r in run]

    results = anyio.run(collect)
    assert all(r.words for r in results)  # the quiet talker's chunk too
    assert engine.calls == 2  # the window, then the quiet talker's stretch alone
    # prompted with the caller's prompt and the window's text before the stretch
    assert engine.options[1].prompt == "Names: " + results[0].text
    quiet = results[1].words
    assert quiet[0].start_s >= 5.2 and quiet[-1].end_s <= 8.8
