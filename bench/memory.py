"""Memory against the audio budget, run by hand: ``python -m bench.memory [--hours 4] [--cases ...]``;
not part of the tests.

For each case, starts the real server (``python -m app``, the allocator tuning included) and sends two
uploads of the same long silent file at once. Reports the idle RSS, the peak while they run (VmHWM,
reset to the idle RSS through /proc/<pid>/clear_refs just before), the peak over idle, and what the
budget charged at most (``asr_decoded_audio_bytes``, sampled from /metrics every 0.2 s), so the
ratio says how much of what decoding really holds the budget sees. Silence keeps inference out of
it: the figures are the upload's, its decode's and its VAD's. Then (``--hour``) one 1-hour file of
speech, transcribed.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.robustness import CACHE, LONG, LONGER, ffmpeg, kib, post, server

# name -> (file suffix, ffmpeg output arguments); sources are silence at the case's rate and layout.
CASES: dict[str, tuple[str, str, list[str]]] = {
    "flac-16k": ("flac", "anullsrc=r=16000:cl=mono", ["-c:a", "flac"]),
    "flac-48k-stereo": ("flac", "anullsrc=r=48000:cl=stereo", ["-c:a", "flac"]),
    "wav-8k": ("wav", "anullsrc=r=8000:cl=mono", ["-c:a", "pcm_s16le"]),
    "mp3-44k": ("mp3", "anullsrc=r=44100:cl=mono", ["-c:a", "libmp3lame", "-b:a", "8k"]),
    "m4a-48k-stereo": ("m4a", "anullsrc=r=48000:cl=stereo", ["-c:a", "aac", "-b:a", "12k"]),
}
_GAUGE = re.compile(r"^asr_decoded_audio_bytes\s+(\S+)$", re.M)


def source(case: str, hours: float) -> Path:
    suffix, lavfi, args = CASES[case]
    seconds = int(hours * 3600)
    return ffmpeg(
        CACHE / f"silence-{case}-{seconds}s.{suffix}", "-f", "lavfi", "-i", lavfi, "-t", str(seconds), *args
    )


class Sampler:
    """The server's peak RSS from now on, and the budget's gauge sampled on a thread until ``stop``."""

    def __init__(self, base: str, pid: int) -> None:
        self.base, self.pid = base, pid
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        self.peak_kib, self.charged = 0, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.2):
            if m := _GAUGE.search(httpx.get(self.base + "/metrics", timeout=10).text):
                self.charged = max(self.charged, float(m.group(1)))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.peak_kib = kib(self.pid, "VmHWM")


def pair(case: str, hours: float, budget_mb: float) -> None:
    path = source(case, hours)
    data = path.read_bytes()
    with server(audio_budget_mb=budget_mb) as (base, pid):
        idle = kib(pid, "VmRSS")
        sampler = Sampler(base, pid)
        start = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            statuses = [r.status_code for r in pool.map(lambda _: post(base, data, path.name), range(2))]
        took = time.monotonic() - start
        sampler.stop()
        over = (sampler.peak_kib - idle) / 1024
        charged = sampler.charged / (1 << 20)
        print(
            f"{case} {hours:g} h x2 ({len(data) / 1e6:.1f} MB each), budget {budget_mb:g} MiB: {statuses} "
            f"in {took:.0f} s; idle {idle / 1024:.0f} MiB, peak {sampler.peak_kib / 1024:.0f} MiB "
            f"(+{over:.0f}), charged at most {charged:.0f} MiB; peak over idle / charged "
            f"{over / charged if charged else float('nan'):.2f}; bound idle + budget + 256 "
            f"{'met' if over <= budget_mb + 256 else 'MISSED'}",
            flush=True,
        )


def hour() -> None:
    listing = CACHE / "hour.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"file '{p}'\n" for p in [LONG, LONGER] * 10))
    path = ffmpeg(CACHE / "hour.m4a", "-f", "concat", "-safe", "0", "-i", str(listing), "-t", "3600",
                  "-c:a", "aac", "-b:a", "64k")  # fmt: skip
    with server() as (base, pid):
        idle = kib(pid, "VmRSS")
        sampler = Sampler(base, pid)
        start = time.monotonic()
        r = post(base, path.read_bytes(), path.name)
        sampler.stop()
        print(
            f"1 h m4a of speech, transcribed: {r.status_code} in {time.monotonic() - start:.0f} s; "
            f"idle {idle / 1024:.0f} MiB, peak {sampler.peak_kib / 1024:.0f} MiB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=4.0, help="length of each silent upload")
    parser.add_argument("--budget-mb", type=float, default=1024.0)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--hour", action="store_true", help="also transcribe a 1-hour file of speech")
    args = parser.parse_args()
    for case in args.cases.split(","):
        pair(case, args.hours, args.budget_mb)
    if args.hour:
        hour()


if __name__ == "__main__":
    main()
