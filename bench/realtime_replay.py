"""What live previews would send, and when, under several stability rules: a replay without the clock.

Run by hand: ``python -m bench.realtime_replay [--clips 30] [--preview-s 0.35]``. The clips stream as
in ``bench.realtime`` (one session, 1.5 s of silence between them, 100 ms appends) through the
server's ``LiveSegmenter``; the real model (in process) decodes each utterance's final text
(prompted with the text before it, as a session does) and a preview of the open utterance after
every append. Then each rule is played over those previews on the session's schedule (the first
preview once the utterance holds ``first`` seconds of audio, the next ``interval`` later and once
the last is done), each preview taking ``--preview-s`` of wall time (measure it: a quiet core's
figure is what counts; contention only slows the decoding, not what the figures say). Per rule:

- first delta: the clip's first delta minus its first loud frame, in seconds of stream (p50 / p95);
- sent wrong: the share of the words previews sent that the final decode does not have (aligned);
- deltas WER: the concatenated deltas (the final's own last delta included) against the completed
  text, i.e. how far the caption the deltas built was from the transcript that replaces it;
- deltas vs ref: the concatenated deltas against the reference (what ``completed`` said when it was
  the sent words followed by the final's rest), beside the completed (final decode) WER.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.audio.chunking import chunking_options  # noqa: E402
from app.audio.pcm import SAMPLE_RATE  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.engine.whisper import WhisperEngine  # noqa: E402
from app.models.registry import embedded_model_path  # noqa: E402
from app.realtime.partials import Partials, Stability  # noqa: E402
from app.realtime.protocol import SessionConfig, TurnDetection  # noqa: E402
from app.realtime.segmenter import LiveSegmenter, SpeechStarted  # noqa: E402
from app.realtime.utterances import decode_options  # noqa: E402
from bench.realtime import GAP_S, STEP, changed_words, load, loud_span, pct  # noqa: E402
from tests.support.evalset import clips, wer  # noqa: E402


@dataclass
class Spoken:
    """One utterance of the stream: its previews by append, and its final text."""

    clip: int  # index of the clip it belongs to
    steps: list[tuple[float, int]] = field(default_factory=list)  # (stream s after the append, samples)
    settled_at: float = 1e9  # stream s when its final decode may start (previews stop)
    closed_at: float = 1e9  # stream s when it is committed (later previews are dropped)
    audio: np.ndarray | None = None  # as committed
    heard: np.ndarray | None = None  # as previewed: the open utterance at its last append
    final: str = ""
    previews: dict[int, str] = field(default_factory=dict)  # samples -> preview text


def segment(stream: np.ndarray, starts: list[float]) -> list[Spoken]:
    settings = load_settings()
    segmenter = LiveSegmenter(chunking_options(settings.vad, TurnDetection()))
    out: list[Spoken] = []
    open_: Spoken | None = None
    for i in range(0, len(stream), STEP):
        t = (i + STEP) / SAMPLE_RATE
        for change in segmenter.feed(stream[i : i + STEP]):
            if isinstance(change, SpeechStarted):
                clip = max(k for k, s in enumerate(starts) if s * 1000 <= change.start_ms + 400 or k == 0)
                open_ = Spoken(clip)
                out.append(open_)
            else:
                spoken = open_ or out[-1]
                spoken.audio, spoken.closed_at = change.audio, t
                open_ = None
        if open_ is not None:
            if segmenter.settled() is not None:
                open_.settled_at = min(open_.settled_at, t)
            elif open_.settled_at > t:
                open_.heard = segmenter.audio()
                open_.steps.append((t, len(open_.heard)))
    return out


def decode_all(spoken: list[Spoken], min_first: int) -> float:
    """Finals in order (each prompts the next), then every preview at once; the mean preview s."""
    settings = load_settings()
    engine = WhisperEngine(embedded_model_path(), cpu_threads=settings.cpu_threads)
    config, context = SessionConfig(), ""
    for s in spoken:
        options = decode_options(settings, config, "en", context, final=True)
        assert s.audio is not None
        s.final = engine.transcribe(s.audio, options).text
        context = f"{context} {s.final}".strip()
    context, jobs, started = "", [], time.monotonic()
    for s in spoken:
        options = decode_options(settings, config, "en", context, final=False)
        context = f"{context} {s.final}".strip()
        for _, n in s.steps:
            if n >= min_first and s.heard is not None:
                jobs.append((s, n, engine.submit(s.heard[:n], options)))
    for s, n, future in jobs:
        s.previews[n] = future.result().text
    engine.close()
    return (time.monotonic() - started) / max(len(jobs), 1) * engine.layout.workers


@dataclass(frozen=True)
class Rule:
    first_s: float
    interval_s: float
    stability: Stability

    def __str__(self) -> str:
        return (
            f"first {self.first_s:.1f} s, every {self.interval_s:.1f} s, "
            f"agree {self.stability.agree_gap_s} s, hold {self.stability.held_words}"
        )


def play(rule: Rule, s: Spoken, preview_s: float) -> tuple[float | None, list[str], str]:
    """(stream s of the first delta, the words previews sent, all deltas) for one utterance."""
    partials, busy_until, last, first = Partials(rule.stability), -1.0, 0, None
    step = round(rule.interval_s * SAMPLE_RATE)
    for t, n in s.steps:
        if t < busy_until or n < max(last + step, round(rule.first_s * SAMPLE_RATE)):
            continue
        busy_until, last = t + preview_s, n
        if busy_until >= s.closed_at or n not in s.previews:
            continue
        if partials.update(s.previews[n], n / SAMPLE_RATE) and first is None:
            first = busy_until
    sent = list(partials.sent)
    partials.finish(s.final)
    return first, sent, partials.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clips", type=int, default=30)
    parser.add_argument("--preview-s", type=float, default=None, help="default: as measured here")
    args = parser.parse_args()
    chosen = [c for c in clips("short") if 3.0 <= c.duration_s <= 12.0][: args.clips]
    parts, starts, speech, offset = [], [], [], 0.0
    for c in chosen:
        audio = load(c)
        start, _ = loud_span(audio)
        starts.append(offset)
        speech.append(offset + start)
        parts += [audio, np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
        offset += len(audio) / SAMPLE_RATE + GAP_S
    stream = np.concatenate(parts)
    spoken = segment(stream, starts)
    measured = decode_all(spoken, min_first=SAMPLE_RATE // 2)
    preview_s = measured if args.preview_s is None else args.preview_s
    finals = [" ".join(s.final for s in spoken if s.clip == k) for k in range(len(chosen))]
    print(
        f"{len(chosen)} clips, {len(spoken)} utterances; "
        f"a preview took {measured:.2f} s here (used: {preview_s:.2f})"
    )
    print(f"completed (final decode) WER against the references: {wer([c.text for c in chosen], finals):.2%}")
    print("| rule | first delta s p50 / p95 | sent wrong | deltas WER vs completed | deltas WER vs ref |")
    print("| --- | --- | --- | --- | --- |")
    rules = [Rule(1.0, 0.2, Stability(1.0, 2))] + [
        Rule(first, interval, Stability(gap, held))
        for first in (0.6, 0.8)
        for interval in (0.2, 0.4)
        for gap in (0.0, 0.3, 0.6)
        for held in (0, 1, 2)
    ]
    for rule in rules:
        firsts: dict[int, float] = {}
        sent_words = wrong = 0
        deltas = [""] * len(chosen)
        for s in spoken:
            first, sent, text = play(rule, s, preview_s)
            if first is not None and s.clip not in firsts:
                firsts[s.clip] = first - speech[s.clip]
            n, changed = changed_words(" ".join(sent), s.final)
            sent_words, wrong = sent_words + n, wrong + changed
            deltas[s.clip] = f"{deltas[s.clip]} {text}".strip()
        fd = list(firsts.values()) or [float("nan")]
        print(
            f"| {rule} | {pct(fd, 0.5):.2f} / {pct(fd, 0.95):.2f} ({len(firsts)}/{len(chosen)}) "
            f"| {wrong / max(sent_words, 1):.1%} of {sent_words} | {wer(finals, deltas):.2%} "
            f"| {wer([c.text for c in chosen], deltas):.2%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
