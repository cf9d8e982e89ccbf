"""A window's decoding passes: which windows share a batched pass, when the rest of a window gets
another, and when faster-whisper's own loop (temperature fallback included) takes over.

The model calls themselves are ``WhisperEngine``'s; this module decides what they run on and puts
their results on the window's timeline.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app.audio.pcm import SAMPLE_RATE, Samples
from app.engine.contract import N_SAMPLES, DecodeOptions, DecodeResult, Segment, Word
from app.engine.quality import kept, mean_logprob

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

logger = logging.getLogger(__name__)

SHORT_SAMPLES = 10 * SAMPLE_RATE  # a short window (DecodeOptions.short_window)
_SHORT_MARGIN = SAMPLE_RATE // 2  # the silence a short window keeps after its audio, at least
HOP_SAMPLES = 160  # samples per mel frame
# A pass whose words end more than this many frames (10 ms each) before the window's end left
# speech undecoded; the rest of the window gets another pass, up to MAX_PASSES in all. (A window
# ends 0.3-0.6 s after its last word when nothing was skipped.)
_UNFINISHED_FRAMES = 100
MAX_PASSES = 4
TRIM_FROM = 20 * SAMPLE_RATE
TRIM_TAIL = 2 * SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class Window:
    samples: Samples
    options: DecodeOptions
    encoded: Future[np.ndarray] | None = None  # its encoder output, computed ahead
    # The rest of a window after Whisper's text ended: Whisper judged it silent, so its text counts
    # only where Whisper is sure it is speech (see ``quality.is_silence``).
    doubted: bool = False
    trimmed: bool = False  # encoded to ``trimmed_samples`` (CPU), not to Whisper's 30 s


@dataclass(frozen=True, slots=True)
class Rest:
    """What is left of a window to decode, and where it starts in the window (in samples)."""

    window: Window
    offset: int


@dataclass(frozen=True, slots=True)
class Pass:
    """One pass's segments; ``resume_sample`` > 0 where its words end before the window's end."""

    transcript: DecodeResult
    resume_sample: int = 0


def window_samples(window: Window) -> int:
    """The encoder window the audio is padded to: Whisper's 30 s (``trimmed``: see
    ``trimmed_samples``), or 10 s for a ``short_window`` request whose audio ends half a second
    before that: on CPU ~8x less encoder work for about the same text (see
    bench/README.md#live-transcription)."""
    short = window.options.short_window and len(window.samples) <= SHORT_SAMPLES - _SHORT_MARGIN
    if short:
        return SHORT_SAMPLES
    return trimmed_samples(len(window.samples)) if window.trimmed else N_SAMPLES


def trimmed_samples(n_samples: int) -> int:
    """Whisper's 30 s window cut to the audio plus TRIM_TAIL of silence, in whole seconds, where the
    audio holds at least TRIM_FROM: the encoder's cost grows faster than its frames (attention), and
    on CPU no batch needs windows of one size. Shorter audio keeps the 30 s: at a 20 s window one
    FLEURS clip of 8.8 s gained an invented "That's it." (see bench/README.md#throughput)."""
    if n_samples < TRIM_FROM:
        return N_SAMPLES
    return min(N_SAMPLES, -(-(n_samples + TRIM_TAIL) // SAMPLE_RATE) * SAMPLE_RATE)


def resume_sample(text_end: int, n_frames: int) -> int:
    """Where the next pass over a window starts (in samples), given the frame where this pass's
    words end among the window's ``n_frames``; 0 when the text reached the window's end."""
    return (text_end if 0 < text_end < n_frames - _UNFINISHED_FRAMES else 0) * HOP_SAMPLES


def batches(windows: Sequence[Window], prefixes: list[list[int]]) -> list[list[int]]:
    """Windows that can share a first pass, grouped; the others are left out.

    A batched call needs one beam size and encoder window, and <|startoftranscript|> at the same
    position in every prompt: windows with previous text share it with their prompts cut to the
    shortest one's length (the most recent text is kept); hotwords are never cut. (Only on a GPU:
    on CPU a batch is one window, so a window's text never depends on what else is waiting.)
    """
    groups: dict[tuple[int, int, str, int], list[int]] = {}
    for i, w in enumerate(windows):
        if w.options.temperature[:1] != (0.0,) or len(w.samples) > N_SAMPLES:
            continue
        shape = (w.options.beam_size, window_samples(w))
        if not prefixes[i]:
            key = (*shape, "none", 0)
        elif w.options.hotwords:
            key = (*shape, "hotwords", len(prefixes[i]))
        else:
            key = (*shape, "previous", 0)
        groups.setdefault(key, []).append(i)
    for (_, _, kind, _), indices in groups.items():
        if kind == "previous":
            keep = min(len(prefixes[i]) for i in indices) - 1
            for i in indices:
                prefixes[i][1:] = prefixes[i][len(prefixes[i]) - keep :]
    return list(groups.values())


def decode_windows(
    windows: Sequence[Window],
    passes: Callable[[list[Window]], list[Pass | None]],
    sequential: Callable[[Window], DecodeResult],
) -> list[DecodeResult | BaseException]:
    """Decode the windows in batched ``passes``; where a pass's words end before its window's end
    (Whisper skipped speech, typically a new speaker after a pause), the rest of the window is
    decoded in the next pass, with the text so far as its prompt. A window a pass gives up on
    (None) is decoded by ``sequential``."""
    segments: list[list[Segment]] = [[] for _ in windows]
    languages: list[tuple[str, float] | None] = [None] * len(windows)
    pending = {i: Rest(w, 0) for i, w in enumerate(windows)}
    fallback: dict[int, Rest] = {}
    given_up: set[int] = set()
    for n in range(MAX_PASSES):
        if not pending:
            break
        order = list(pending)
        done_passes = passes([pending[i].window for i in order])
        following: dict[int, Rest] = {}
        for i, done in zip(order, done_passes, strict=True):
            rest = pending[i]
            if n == 0 and _gives_up(rest.window.options, done):
                given_up.add(i)
                continue
            if done is None:  # sampled temperatures, too long, or failed Whisper's checks
                fallback[i] = rest
                continue
            transcript = done.transcript
            segments[i] += _continued(segments[i], rest, transcript.segments)
            languages[i] = languages[i] or (transcript.language, transcript.language_probability)
            if done.resume_sample:
                options = rest.window.options
                tail = dataclasses.replace(
                    options,
                    language=options.language or transcript.language,
                    prompt=" ".join(p for p in (options.prompt, transcript.text) if p) or None,
                )
                following[i] = Rest(
                    Window(
                        rest.window.samples[done.resume_sample :],
                        tail,
                        doubted=True,
                        trimmed=rest.window.trimmed,
                    ),
                    rest.offset + done.resume_sample,
                )
        pending = following
    fallback.update(pending)  # still unfinished after MAX_PASSES
    results: list[DecodeResult | BaseException] = []
    for i, w in enumerate(windows):
        if i in fallback:
            rest = fallback[i]
            logger.debug("decoding %.1f s sequentially", len(rest.window.samples) / SAMPLE_RATE)
            try:
                alone = sequential(rest.window)
            except Exception as exc:  # one bad window fails only its own request
                results.append(exc)
                continue
            segments[i] += _continued(segments[i], rest, alone.segments)
            languages[i] = languages[i] or (alone.language, alone.language_probability)
        language, probability = languages[i] or (w.options.language or "en", 1.0)
        fell_back = i in fallback or i in given_up
        results.append(DecodeResult(kept(tuple(segments[i])), language, probability, fell_back=fell_back))
    return results


def _gives_up(options: DecodeOptions, done: Pass | None) -> bool:
    """A first pass that failed Whisper's checks, or left part of the window for more passes while
    less sure than ``options.give_up_below`` (a complete pass is kept: it is what the request asked)."""
    if options.give_up_below is None:
        return False
    if done is None:
        return True
    mean = mean_logprob(done.transcript.segments)
    return done.resume_sample > 0 and mean is not None and mean < options.give_up_below


def sequential(model: WhisperModel, window: Window) -> DecodeResult:
    """faster-whisper's own loop, temperature fallback included (with timestamps: its segments
    need no word alignment to be timed)."""
    options = window.options
    segments, info = model.transcribe(
        window.samples,
        language=options.language if model.model.is_multilingual else "en",
        task=options.task,
        beam_size=options.beam_size,
        temperature=list(options.temperature),
        initial_prompt=options.prompt or None,
        hotwords=options.hotwords or None,
        word_timestamps=options.word_timestamps,
        condition_on_previous_text=True,  # the text so far prompts the rest of the window
        vad_filter=False,  # windows come from our own VAD
    )
    decoded = tuple(_from_library(s) for s in segments)  # runs the model, here
    return DecodeResult(kept(decoded), info.language, info.language_probability)


def _continued(earlier: list[Segment], rest: Rest, later: Sequence[Segment]) -> list[Segment]:
    """A later pass's segments on the window's timeline, no earlier than where the earlier passes'
    text ended (Whisper may restart a few frames before it)."""
    floor_s = earlier[-1].end_s if earlier else 0.0
    return [s.shifted(rest.offset / SAMPLE_RATE, floor_s) for s in later]


def _from_library(s: Any) -> Segment:
    return Segment(
        start_s=float(s.start),
        end_s=float(s.end),
        text=str(s.text),
        tokens=tuple(s.tokens),
        avg_logprob=min(0.0, float(s.avg_logprob)),
        compression_ratio=float(s.compression_ratio),
        no_speech_prob=float(s.no_speech_prob),
        temperature=float(s.temperature or 0.0),
        words=tuple(
            Word(float(w.start), float(w.end), str(w.word), float(w.probability)) for w in s.words or ()
        ),
    )
