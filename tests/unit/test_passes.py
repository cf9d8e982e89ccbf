"""``passes.decode_windows``: which windows get further passes, which go to the sequential loop, and
which a decode asking only "is this my language?" gives up on (fake passes, no model)."""

from __future__ import annotations

import numpy as np

from app.audio.pcm import SAMPLE_RATE
from app.engine import N_SAMPLES, DecodeOptions, DecodeResult, Segment
from app.engine.passes import (
    SHORT_SAMPLES,
    TRIM_FROM,
    TRIM_TAIL,
    Pass,
    Window,
    decode_windows,
    trimmed_samples,
    window_samples,
)
from app.engine.quality import is_silence


def segment(avg_logprob: float) -> Segment:
    return Segment(0.0, 1.0, " words", (1, 2, 3), avg_logprob, 1.2, 0.01, 0.0)


def run(first: list[Pass | None], options: DecodeOptions) -> tuple[list[DecodeResult], list[int]]:
    """Decode one window per first-pass outcome; returns the results and the windows decoded alone."""
    windows = [Window(np.zeros(16000, np.float32), options) for _ in first]
    alone: list[int] = []

    def passes(batch: list[Window]) -> list[Pass | None]:
        if len(batch) == len(first):
            return list(first)
        return [SURE for _ in batch]  # the rest of an unfinished window

    def sequential(window: Window) -> DecodeResult:
        alone.append(next(k for k, w in enumerate(windows) if w is window))
        return DecodeResult((segment(-0.2),), "en", 1.0)

    results = decode_windows(windows, passes, sequential)
    assert all(isinstance(r, DecodeResult) for r in results), results
    return [r for r in results if isinstance(r, DecodeResult)], alone


SURE, UNSURE = (
    Pass(DecodeResult((segment(-0.1),), "en", 1.0)),
    Pass(DecodeResult((segment(-0.8),), "en", 1.0)),
)
SILENT = Pass(DecodeResult((), "en", 1.0))
# A pass whose words end half way through the window: the rest would get another pass.
UNFINISHED = Pass(DecodeResult((segment(-0.8),), "en", 1.0), resume_sample=8000)


def test_a_failed_first_pass_goes_to_the_sequential_loop() -> None:
    results, alone = run([SURE, UNSURE, None, SILENT, UNFINISHED], DecodeOptions(language="en"))
    assert alone == [2]
    assert [r.fell_back for r in results] == [False, False, True, False, False]
    assert [r.text for r in results] == ["words", "words", "words", "", "words words"]


def test_a_decode_that_asks_gives_up_after_a_failed_or_unsure_unfinished_first_pass() -> None:
    options = DecodeOptions(language="en", give_up_below=-0.35)
    results, alone = run([SURE, UNSURE, None, SILENT, UNFINISHED], options)
    assert alone == []  # nothing decoded again, hotter or alone
    assert [r.fell_back for r in results] == [False, False, True, False, True]
    # complete passes are kept as they are: what the request asked, sure or not
    assert [r.text for r in results[:4]] == ["words", "words", "", ""]


def test_long_windows_are_encoded_to_their_audio_and_a_tail_of_silence() -> None:
    """From TRIM_FROM of audio on, Whisper's 30 s shrinks to the audio plus TRIM_TAIL, in whole
    seconds; shorter audio, a window not ``trimmed`` (a GPU's) and a live one on the short encoder
    window keep theirs."""
    second = SAMPLE_RATE
    for n in range(second // 10, N_SAMPLES + 1, second // 10):
        size = trimmed_samples(n)
        assert size % second == 0 and n <= size <= N_SAMPLES
        if n < TRIM_FROM:
            assert size == N_SAMPLES
        else:
            assert min(n + TRIM_TAIL, N_SAMPLES) <= size < n + TRIM_TAIL + second
    assert trimmed_samples(TRIM_FROM - 1) == N_SAMPLES and trimmed_samples(TRIM_FROM) < N_SAMPLES
    audio = np.zeros(TRIM_FROM, np.float32)
    assert window_samples(Window(audio, DecodeOptions(None), trimmed=True)) == TRIM_FROM + TRIM_TAIL
    assert window_samples(Window(audio, DecodeOptions(None))) == N_SAMPLES
    assert window_samples(Window(audio[: 15 * second], DecodeOptions(None), trimmed=True)) == N_SAMPLES
    live = DecodeOptions(None, short_window=True)
    assert window_samples(Window(audio[: 5 * second], live, trimmed=True)) == SHORT_SAMPLES


def test_the_rest_of_a_window_counts_only_where_whisper_is_sure_it_is_speech() -> None:
    """A window's first pass keeps probable text Whisper half doubts (its own rule); the rest of a
    window, which Whisper had judged silent, keeps it only where no-speech is low."""
    assert not is_silence(0.45, -0.5, doubted=False)
    assert is_silence(0.45, -0.5, doubted=True)
    assert not is_silence(0.1, -0.9, doubted=True)
    assert is_silence(0.7, -1.2, doubted=False)
