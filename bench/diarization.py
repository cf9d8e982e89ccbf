"""``python -m bench.diarization``: diarization error rate per set (pyannote.metrics, collar 0.25,
overlap scored) beside the one-speaker-on-speech baseline, the right speaker count, and CPU seconds
per minute of audio; ``--hour`` also diarizes a 1-hour recording (time and peak memory).

In-process, no transcription: what diarization adds on top of it.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from app.diarization import SpeakerHints, diarize
from app.diarization.diarizer import speech_regions
from tests.support.diarization_sets import (
    CONVERSATIONS,
    Recording,
    conversation,
    labelled,
    total_der,
    unseen_voices_conversation,
)


def _hyp(rec: Recording, hints: SpeakerHints) -> tuple[list[tuple[float, float, int]], int, float]:
    started = time.process_time()
    d = diarize(rec.samples, hints)
    return [(t.start_s, t.end_s, t.speaker) for t in d.turns], d.num_speakers, time.process_time() - started


def _baseline(rec: Recording) -> list[tuple[float, float, int]]:
    return [(s / 16000, e / 16000, 0) for s, e in speech_regions(rec.samples)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.diarization")
    parser.add_argument("--hour", action="store_true", help="also diarize a 1-hour recording")
    args = parser.parse_args()
    sets = {
        "joined 2-4 speakers (the tests' 18)": [conversation(seed, n) for seed, n in CONVERSATIONS],
        "joined 2-4 speakers, seeds 6-31 (78)": [conversation(s, n) for n in (2, 3, 4) for s in range(6, 32)],
        "with the long files' readers, not fitted to (48)": [
            conversation(s, n, long_readers=True) for n in (2, 3, 4) for s in range(16)
        ],
        "FLEURS readers, one clip each, not fitted to (36)": [
            unseen_voices_conversation(seed, n) for n in (2, 3, 4) for seed in range(12)
        ],
        "AMI excerpts (8)": [r for r in labelled() if r.id.startswith("pyannote-debug")],
        "two-party call": labelled(["pyannote-sample"]),
    }
    diarize(sets["two-party call"][0].samples, SpeakerHints())  # loads the models: not counted
    cpu = audio_s = 0.0
    print(
        "| set | DER | one speaker on speech | right count | CPU s per min |\n| --- | --- | --- | --- | --- |"
    )
    for name, recordings in sets.items():
        runs = [_hyp(r, SpeakerHints()) for r in recordings]
        set_cpu, set_audio = sum(c for _, _, c in runs), sum(len(r.samples) / 16000 for r in recordings)
        cpu, audio_s = cpu + set_cpu, audio_s + set_audio
        der = total_der((r, h) for r, (h, _, _) in zip(recordings, runs, strict=True))
        base = total_der((r, _baseline(r)) for r in recordings)
        right = sum(n == r.speakers for r, (_, n, _) in zip(recordings, runs, strict=True))
        rate = set_cpu / set_audio * 60
        print(f"| {name} | {der:.1%} | {base:.1%} | {right}/{len(recordings)} | {rate:.2f} |")
    call = sets["two-party call"][0]
    told, _, told_cpu = _hyp(call, SpeakerHints(num_speakers=2))
    told_rate = told_cpu / len(call.samples) * 16000 * 60
    print(f"| two-party call, num_speakers=2 | {total_der([(call, told)]):.1%} | | | {told_rate:.2f} |")
    print(f"\nCPU: {cpu / audio_s * 60:.2f} s per minute of audio over the sets ({audio_s / 60:.1f} min)")
    if args.hour:
        parts = [conversation(seed, 2 + seed % 3).samples for seed in range(60)]
        joined = np.concatenate(parts)
        hour = np.tile(joined, 1 + 3600 * 16000 // len(joined))[: 3600 * 16000]
        started, cpu0 = time.monotonic(), time.process_time()
        d = diarize(hour, SpeakerHints())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"1 h recording: {time.monotonic() - started:.0f} s wall, "
            f"{time.process_time() - cpu0:.0f} s CPU, "
            f"{d.num_speakers} speakers, {len(d.turns)} turns, process peak RSS {peak:.0f} MiB"
        )


if __name__ == "__main__":
    main()
