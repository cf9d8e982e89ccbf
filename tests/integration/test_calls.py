"""Mono telephone calls (8 kHz, 300-3400 Hz, G.711 mu-law, decoded as an upload) from the held-out
half of tests/support/calls.py: pairs of voices no count rule was fitted on. The bars leave room for
other CPUs' int8 embeddings (AVX-512 VNNI kernels moved silhouettes by ~0.02 before)."""

from __future__ import annotations

from app.diarization import Diarization, SpeakerHints, diarize
from app.diarization.embedder import narrowband
from tests.support.calls import HELD_OUT, STYLES, call, phone_line
from tests.support.diarization_sets import confusion, load
from tests.support.evalset import clips

# The first four held-out calls in the "overlaps" style (turns of 1-15 s, most starting 0.1-0.5 s
# before the other's end). Calls where one party only says "mhm" are not counted right yet
# (bench/README.md#calls): the encoder's 0.8 s units and 1.4 s windows cannot hear 0.5-1 s turns.
PLAN = [
    (a, b, style) for i, (a, b) in enumerate(HELD_OUT) if (style := STYLES[i % len(STYLES)]) == "overlaps"
][:4]


def _turns(d: Diarization) -> list[tuple[float, float, int]]:
    return [(t.start_s, t.end_s, t.speaker) for t in d.turns]


def test_held_out_calls_count_two_and_keep_who_said_what() -> None:
    """The issue's bars on them: the count right (at most one miss in 4, for other CPUs), speaker
    confusion <= 5% of the speech free and about 3% told ``num_speakers=2``."""
    recordings = [call(a, b, style) for a, b, style in PLAN]
    free = [diarize(r.samples, SpeakerHints()) for r in recordings]
    told = [diarize(r.samples, SpeakerHints(num_speakers=2)) for r in recordings]
    counts = [d.num_speakers for d in free]
    free_confusion = confusion((r, _turns(d)) for r, d in zip(recordings, free, strict=True))
    told_confusion = confusion((r, _turns(d)) for r, d in zip(recordings, told, strict=True))
    assert counts.count(2) >= len(PLAN) - 1, counts
    # Told: 2.8% on the Zen 3 VM (AVX2), against the issue's 3%; the bound leaves other CPUs' kernels room.
    assert free_confusion <= 0.05 and told_confusion <= 0.04, (free_confusion, told_confusion)


def test_held_out_calls_where_one_party_says_little_count_two() -> None:
    """Held-out "dominant" calls (one party ~80% of the talk, the other mostly 0.5-1 s "mhm"s):
    clustering parts the talker's voice into several groups; merged pair by pair, the groups of
    one voice fold together and the quiet party stays apart (4 of these 8 counted 2 before, 7 now)."""
    plan = [(a, b) for i, (a, b) in enumerate(HELD_OUT) if STYLES[i % len(STYLES)] == "dominant"][:8]
    counts = [diarize(call(a, b, "dominant").samples, SpeakerHints()).num_speakers for a, b in plan]
    assert counts.count(2) >= 6, counts


def test_a_phone_line_is_told_from_wideband_speech() -> None:
    """The pair bar for a phone line (ONE_VOICE_PAIR_PHONE) goes with 8 kHz audio only: the same
    speech is narrowband once sent down the line, not before."""
    speech = load(next(c for c in clips("short") if c.id.startswith("jfk")).path)
    assert not narrowband(speech)
    assert narrowband(phone_line(speech, 0))
