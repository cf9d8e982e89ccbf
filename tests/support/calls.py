"""Two-party telephone calls (and one-voice "calls") built from the eval set's voices, sent down a
phone line: alternating turns of 1-15 s, backchannels of 0.5-1 s, a party with 80% of the talk,
small overlaps; mixed, band-limited to 300-3400 Hz at 8 kHz and G.711 mu-law coded by ffmpeg, then
decoded as the server decodes an upload. Deterministic (seeded); the reference turns are exact.

The calls are split in two halves by speaker pair: ``TUNING`` (what the count rules may be fitted
to) and ``HELD_OUT`` (pairs no rule was fitted on)."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from app.audio.decode import decode_audio
from app.audio.pcm import PcmFormat
from tests.support.diarization_sets import RATE, Recording, Spans, Turns, load, speech_spans
from tests.support.evalset import clips


@dataclass(frozen=True)
class Voice:
    name: str
    gender: str  # M | F (the corpus's, or by pitch for FLEURS)
    clip_ids: tuple[str, ...] = ()  # empty: all the clips of the manifest speaker ``name``


# Every voice with 10 s or more of speech; FLEURS clips are one reader each (one clip per voice:
# FLEURS repeats readers within a language, so two clips are two voices only at clearly other pitch).
VOICES = (
    Voice("librispeech-1688 (M, winam)", "M"),
    Voice("librispeech-1998 (F, Sonja)", "F"),
    Voice("librispeech-3331 (F, Peggy)", "F"),
    Voice("librispeech-367 (F, Kathleen Dang)", "F"),
    Voice("librispeech-1221", "F"),
    Voice("librivox-sense-and-sensibility-01-reader", "M"),
    Voice("john-f-kennedy", "M"),
    Voice("librispeech-2033 (M, Filippo Gioachin)", "M"),
    Voice("ljspeech (Linda Johnson)", "F"),
    Voice("fleurs-de-000", "M", ("fleurs-de-000",)),
    Voice("fleurs-en-000", "M", ("fleurs-en-000",)),
    Voice("fleurs-en-002", "F", ("fleurs-en-002",)),
    Voice("fleurs-es-001", "M", ("fleurs-es-001",)),
    Voice("fleurs-fr-001", "F", ("fleurs-fr-001",)),
    Voice("fleurs-pt-005", "M", ("fleurs-pt-005",)),
    Voice("fleurs-pt-001", "F", ("fleurs-pt-001",)),
)
STYLES = ("balanced", "dominant", "backchannels", "overlaps")
Piece = tuple[npt.NDArray[np.float32], Spans]  # audio and its speech spans (relative to it)


def _pairs() -> tuple[list[tuple[Voice, Voice]], list[tuple[Voice, Voice]]]:
    pairs = [(a, b) for i, a in enumerate(VOICES) for b in VOICES[i + 1 :]]
    random.Random(28).shuffle(pairs)
    return pairs[: len(pairs) // 2], pairs[len(pairs) // 2 :]


TUNING, HELD_OUT = _pairs()


@cache
def _phrases(voice: Voice) -> tuple[tuple[Piece, ...], ...]:
    """A voice's clips as phrases: speech between pauses of 0.3 s or more, in order, per clip."""
    found = [c for c in clips() if c.kind in ("short", "long", "multilingual")]
    paths = [
        c.path
        for c in found
        if (c.id in voice.clip_ids if voice.clip_ids else c.raw.get("speaker") == voice.name)
    ]
    out = []
    for path in sorted(set(paths)):
        audio = load(path)
        out.append(tuple(_cut(audio, s, e) for s, e in speech_spans(audio, pause_s=0.3)))
    return tuple(out)


def _cut(audio: npt.NDArray[np.float32], start: float, end: float) -> Piece:
    lo = max(0, int((start - 0.03) * RATE))  # the span's edges, as a recording keeps them
    return audio[lo : int((end + 0.03) * RATE)], [(start - lo / RATE, end - lo / RATE)]


class _Party:
    """One side of a call: what the voice has not said yet (no audio is heard twice in a call: a
    repeated phrase would give identical embeddings, which cluster too well)."""

    def __init__(self, voice: Voice, rng: random.Random) -> None:
        self.rng = rng
        self.left = [list(clip) for clip in _phrases(voice)]

    def turn(self, seconds: float) -> Piece | None:
        """About ``seconds`` of consecutive phrases from a random point of a clip (None: all said)."""
        clips_left = [c for c in self.left if c]
        if not clips_left:
            return None
        phrases = self.rng.choice(clips_left)
        i = self.rng.randrange(len(phrases))
        audio, spans = phrases.pop(i)
        parts, placed, t = [audio], list(spans), len(audio) / RATE
        while t < seconds and i < len(phrases):
            gap = np.zeros(int(self.rng.uniform(0.3, 0.6) * RATE), np.float32)
            audio, spans = phrases.pop(i)
            placed += [(s + t + len(gap) / RATE, e + t + len(gap) / RATE) for s, e in spans]
            parts += [gap, audio]
            t += (len(gap) + len(audio)) / RATE
        return np.concatenate(parts), placed

    def backchannel(self) -> Piece | None:
        """0.5-1 s ("mhm", "right"): the start of a phrase not said yet."""
        piece = self.turn(0.0)
        if piece is None:
            return None
        audio, spans = piece
        end = min(spans[0][0] + self.rng.uniform(0.5, 1.0), spans[0][1])
        return audio[: int((end + 0.03) * RATE)], [(spans[0][0], end)]


def _script(rng: random.Random, a: Voice, b: Voice, style: str) -> Iterator[tuple[int, Piece, float]]:
    """(who: 0 or 1, what they say, the gap before it: negative overlaps the turn before); the call
    ends at 30-60 s of talk or when a party has nothing left to say."""
    parties = (_Party(a, rng), _Party(b, rng))
    talk = 0.0
    who = rng.randrange(2)
    target = rng.uniform(30, 60)
    for _ in range(60):  # a bound on turns; calls end by length well before
        if talk >= target:
            return
        if style == "dominant" and who == 1:  # the other party: mostly "mhm", now and then a few words
            piece = parties[1].backchannel() if rng.random() < 0.75 else parties[1].turn(rng.uniform(1, 3))
        else:
            seconds = float(np.exp(rng.uniform(0.0, np.log(15.0))))
            piece = parties[who].turn(seconds * (2.0 if style == "dominant" else 1.0))
        if piece is None:
            return
        gap = rng.uniform(0.15, 0.8)
        if style == "overlaps" and rng.random() < 0.6:
            gap = -rng.uniform(0.1, 0.5)
        yield who, piece, gap
        talk += len(piece[0]) / RATE
        if style == "backchannels" and len(piece[0]) > 4 * RATE and rng.random() < 0.7:
            reply = parties[1 - who].backchannel()  # over the end of the other's turn
            if reply is not None:
                yield 1 - who, reply, -rng.uniform(0.0, 0.3) - 1.5
        who = 1 - who


def _mixed(
    turns: Iterator[tuple[int, Piece, float]], names: tuple[str, ...], rng: random.Random
) -> tuple[npt.NDArray[np.float32], Turns]:
    gains = [10 ** (-rng.uniform(0, 6) / 20) for _ in names]  # each party's own line level
    placed: list[tuple[float, npt.NDArray[np.float32], int]] = []
    reference: Turns = []
    end = 0.5
    for who, (audio, spans), gap in turns:
        start = max(0.3, end + gap)
        placed.append((start, audio * gains[who], who))
        reference += [(start + s, start + e, names[who]) for s, e in spans]
        end = max(end, start + len(audio) / RATE)
    out = np.zeros(int((end + 0.5) * RATE) + 1, np.float32)
    for start, audio, _ in placed:
        i = int(start * RATE)
        out[i : i + len(audio)] += audio
    return out, sorted(reference)


def phone_line(samples: npt.NDArray[np.float32], seed: int) -> npt.NDArray[np.float32]:
    """16 kHz audio as a call carries it: line noise, -3 dBFS peaks, 300-3400 Hz, 8 kHz G.711
    mu-law WAV (ffmpeg), decoded as the server decodes an upload."""
    noise = np.random.default_rng(seed).normal(0, 1e-3, len(samples)).astype(np.float32)
    level = 0.7 / max(float(np.abs(samples).max()), 1e-6)
    band = "highpass=f=300,highpass=f=300,lowpass=f=3400,lowpass=f=3400"
    wav = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "f32le", "-ar", str(RATE), "-ac", "1",
         "-i", "pipe:0", "-af", band, "-ar", "8000", "-acodec", "pcm_mulaw", "-f", "wav", "pipe:1"],
        input=(samples * level + noise).astype("<f4").tobytes(), capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    audio = decode_audio(wav, content_type="audio/wav", pcm=PcmFormat(), max_duration_s=3600)
    assert audio.source_sample_rate == 8000
    return audio.to_float()


def call(a: Voice, b: Voice, style: str) -> Recording:
    """A two-party call between ``a`` and ``b`` in ``style`` (one of STYLES), seeded by the pair."""
    rng = random.Random(f"{a.name}|{b.name}|{style}")
    samples, reference = _mixed(_script(rng, a, b, style), (a.name, b.name), rng)
    return Recording(
        f"call-{style}-{a.name}-{b.name}", phone_line(samples, rng.randrange(2**31)), reference, 2
    )


def monologue(voice: Voice) -> Recording:
    """One voice on the line for 30-60 s, pausing 0.3-1.5 s between turns: a one-speaker call."""
    rng = random.Random(voice.name)
    target = rng.uniform(30, 60)

    party = _Party(voice, rng)

    def turns() -> Iterator[tuple[int, Piece, float]]:
        said = 0.0
        for _ in range(60):  # a bound on turns
            piece = party.turn(rng.uniform(2, 15))
            if piece is None or said >= target:
                return
            said += len(piece[0]) / RATE
            yield 0, piece, rng.uniform(0.3, 1.5)

    samples, reference = _mixed(turns(), (voice.name,), rng)
    return Recording(f"monologue-{voice.name}", phone_line(samples, rng.randrange(2**31)), reference, 1)


def calls(half: list[tuple[Voice, Voice]]) -> list[Recording]:
    """One call per pair of ``half``, the styles taken in turn."""
    return [call(a, b, STYLES[i % len(STYLES)]) for i, (a, b) in enumerate(half)]


def monologues(held_out: bool) -> list[Recording]:
    """One-voice calls of every other voice (the held-out ones: the others)."""
    return [monologue(v) for i, v in enumerate(VOICES) if i % 2 == held_out]
