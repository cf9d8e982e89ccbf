"""``python -m bench.calls``: the speaker count and confusion on two-party telephone calls (8 kHz,
300-3400 Hz, G.711 mu-law; tests/support/calls.py) and one-voice calls, on the tuning half (what
count rules may be fitted to) and the held-out half, free and with ``num_speakers=2``; ``--misses`` lists
the calls counted wrong."""

from __future__ import annotations

import argparse
import time

from app.diarization import Diarization, SpeakerHints, diarize
from tests.support.calls import HELD_OUT, TUNING, calls, monologues
from tests.support.diarization_sets import Recording, confusion


def _turns(d: Diarization) -> list[tuple[float, float, int]]:
    return [(t.start_s, t.end_s, t.speaker) for t in d.turns]


def _row(name: str, recordings: list[Recording], hints: SpeakerHints, misses: bool) -> None:
    started = time.process_time()
    found = [diarize(r.samples, hints) for r in recordings]
    cpu = time.process_time() - started
    right = sum(d.num_speakers == r.speakers for d, r in zip(found, recordings, strict=True))
    pairs = [(r, _turns(d)) for r, d in zip(recordings, found, strict=True)]
    minutes = sum(len(r.samples) for r in recordings) / 16000 / 60
    print(
        f"| {name} | {right}/{len(recordings)} | {confusion(pairs):.1%} | {cpu / minutes:.2f} |", flush=True
    )
    for r, d in zip(recordings, found, strict=True):
        if misses and d.num_speakers != r.speakers:
            print(f"|   miss: {r.id} | {d.num_speakers} speakers | {confusion([(r, _turns(d))]):.1%} | |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.calls")
    parser.add_argument("--misses", action="store_true", help="list the calls counted wrong")
    parser.add_argument("--half", choices=("tuning", "held-out", "both"), default="both")
    parser.add_argument("--limit", type=int, default=None, help="the first N pairs of each half")
    args = parser.parse_args()
    halves = {"tuning": TUNING, "held-out": HELD_OUT}
    print("| set | right count | speaker confusion | CPU s per min |\n| --- | --- | --- | --- |")
    for half, pairs in halves.items():
        if args.half not in (half, "both"):
            continue
        recordings = calls(pairs[: args.limit])
        _row(f"{half} calls ({len(recordings)})", recordings, SpeakerHints(), args.misses)
        _row(f"{half} calls, num_speakers=2", recordings, SpeakerHints(num_speakers=2), args.misses)
        ones = monologues(held_out=half == "held-out")[: args.limit]
        _row(f"{half} one-voice calls ({len(ones)})", ones, SpeakerHints(), args.misses)


if __name__ == "__main__":
    main()
