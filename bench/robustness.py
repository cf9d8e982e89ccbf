"""Robustness figures, run by hand: ``python -m bench.robustness [--skip-hour] [--first-delta]``; not
part of the tests.

Starts the real server (real model) under a 6 GiB RLIMIT_AS and reports, from /proc: peak RSS for the
decompression bombs (a 28 KB WAV whose header says 1 Hz, four at once; 4 h of 96 kHz stereo silence
as FLAC), for a 1 h upload (m4a, transcribed); requests in progress during a burst of 20 requests for
the 97 s file with 2 + 2 slots; how long a batch client's work continues after it hangs up on a
12-minute file; and the first stream delta for files of growing length, with and without a language.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.audiogen import one_hz_wav  # noqa: E402
from tests.support.evalset import EVAL_DIR  # noqa: E402
from tests.support.harness import free_port  # noqa: E402

URL = "/v1/audio/transcriptions"
LONG = EVAL_DIR / "long" / "long-ls-test-other-2033-164914-0000-0009.flac"  # 97 s
LONGER = EVAL_DIR / "long" / "long-ljspeech-LJ001-0001-0032.flac"  # 267 s
SHORT = EVAL_DIR / "short" / "ls-test-other-1688-142285-0000.flac"  # 15 s
CACHE = Path(os.environ.get("BENCH_CACHE", "/tmp/asr-bench-robustness"))
GUARD = 6 << 30


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ffmpeg(out: Path, *args: str) -> Path:
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args, str(out)], check=True)
    return out


@contextlib.contextmanager
def server(**settings: object) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "ASR_HOST": "127.0.0.1", "ASR_PORT": str(port), "ASR_LOG_LEVEL": "warning"}
    env.update({f"ASR_{k.upper()}": str(v) for k, v in settings.items()})
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=REPO,
        env=env,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (GUARD, GUARD)),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def post(base: str, data: bytes, name: str = "a.wav", timeout: float = 3600, **fields: str) -> httpx.Response:
    return httpx.post(
        base + URL,
        data={"model": "whisper-1", **fields},
        files={"file": (name, data, "audio/wav")},
        timeout=timeout,
    )


def mib(k: int) -> str:
    return f"{k / 1024:.0f} MiB"


def bombs_and_hour(skip_hour: bool) -> None:
    flac = ffmpeg(CACHE / "silence-4h-96k-stereo.flac", "-f", "lavfi", "-i", "anullsrc=r=96000:cl=stereo",
                  "-t", "14400", "-c:a", "flac")  # fmt: skip
    with server() as (base, pid):
        print(f"idle server: RSS {mib(kib(pid, 'VmRSS'))}, peak {mib(kib(pid, 'VmHWM'))}")
        with ThreadPoolExecutor(4) as pool:
            statuses = [r.status_code for r in pool.map(lambda _: post(base, one_hz_wav()), range(4))]
        print(f"4 x 28 KB WAV at 1 Hz at once: {statuses}, peak RSS {mib(kib(pid, 'VmHWM'))}")
        start = time.monotonic()
        r = post(base, flac.read_bytes())
        print(
            f"4 h 96 kHz stereo FLAC ({flac.stat().st_size / 1e6:.1f} MB): {r.status_code} "
            f"in {time.monotonic() - start:.1f} s ({r.json().get('error')}), "
            f"peak RSS {mib(kib(pid, 'VmHWM'))}"
        )
    if skip_hour:
        return
    listing = CACHE / "hour.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"file '{p}'\n" for p in [LONG, LONGER] * 10))
    hour = ffmpeg(CACHE / "hour.m4a", "-f", "concat", "-safe", "0", "-i", str(listing), "-t", "3600",
                  "-c:a", "aac", "-b:a", "64k")  # fmt: skip
    with server() as (base, pid):
        start = time.monotonic()
        r = post(base, hour.read_bytes(), "hour.m4a")
        chars = len(r.json().get("text") or "")
        print(
            f"1 h m4a ({hour.stat().st_size / 1e6:.0f} MB): {r.status_code}, {chars} characters in "
            f"{time.monotonic() - start:.0f} s, peak RSS {mib(kib(pid, 'VmHWM'))}"
        )


def burst() -> None:
    data = LONG.read_bytes()
    with server(max_concurrent_requests=2, max_queued_requests=2) as (base, _):
        seen: list[int] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                seen.append(httpx.get(base + "/health", timeout=30).json()["active_requests"])
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(lambda _: post(base, data), range(20)))
        done.set()
        watcher.join()
        statuses = [r.status_code for r in responses]
        retry = all("retry-after" in r.headers for r in responses if r.status_code == 503)
        print(
            f"burst of 20 x 97 s (2 + 2 slots): {statuses.count(200)} x 200, {statuses.count(503)} x 503 "
            f"(Retry-After on all: {retry}); most in progress {max(seen)}"
        )


def departed_client() -> None:
    listing = CACHE / "twelve.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"file '{LONG}'\n" for _ in range(8)))
    twelve = ffmpeg(CACHE / "twelve.flac", "-f", "concat", "-safe", "0", "-i", str(listing), "-t", "720")
    with server() as (base, pid):

        def leave() -> None:
            with contextlib.suppress(httpx.HTTPError):
                post(base, twelve.read_bytes(), "twelve.flac", timeout=2)

        leave()
        gone = time.monotonic()
        freed = None
        last, quiet_since = cpu_s(pid), None
        while time.monotonic() - gone < 120:
            time.sleep(0.25)
            if freed is None and httpx.get(base + "/health").json()["active_requests"] == 0:
                freed = time.monotonic() - gone
            now = cpu_s(pid)
            busy = (now - last) / 0.25 > 0.2
            last = now
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 1.0 and freed is not None:
                break
        work = (quiet_since or time.monotonic()) - gone
        print(
            f"12 min batch, client gone after 2 s: slot freed after {freed:.1f} s, CPU busy for {work:.1f} s"
        )


def first_delta(skip_hour: bool) -> None:
    """Time to the first ``transcript.text.delta`` (and to ``done``), with the language declared and
    without (detection runs first), for files of growing length: it should not grow with them."""
    # The concat demuxer needs one sample rate: the 267 s file is 22.05 kHz, the 97 s one 16 kHz.
    longer = ffmpeg(CACHE / "longer-16k.flac", "-i", str(LONGER), "-ar", "16000")
    listing = CACHE / "long-stream.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in [LONG, longer] * 10))
    twelve = ffmpeg(CACHE / "twelve.flac", "-f", "concat", "-safe", "0", "-i", str(listing), "-t", "728")
    paths = [SHORT, LONG, twelve]
    if not skip_hour:
        paths.append(
            ffmpeg(CACHE / "hour.flac", "-f", "concat", "-safe", "0", "-i", str(listing), "-t", "3600")
        )
    with server() as (base, pid):
        for language in ("en", None):  # load both models (detection uses the multilingual one)
            data = {"model": "whisper-1", **({"language": language} if language else {})}
            httpx.post(base + URL, data=data, files={"file": SHORT.open("rb")}, timeout=600)
        for path in paths:
            for language in ("en", None):
                data = {
                    "model": "whisper-1",
                    "stream": "true",
                    **({"language": language} if language else {}),
                }
                start, cpu, first = time.monotonic(), cpu_s(pid), None
                with httpx.stream(
                    "POST", base + URL, data=data,
                    files={"file": (path.name, path.read_bytes(), "audio/wav")}, timeout=3600,
                ) as r:  # fmt: skip
                    for line in r.iter_lines():
                        kind = json.loads(line[5:])["type"] if line.startswith("data: {") else ""
                        if kind == "transcript.text.delta" and first is None:
                            first, first_cpu = time.monotonic() - start, cpu_s(pid) - cpu
                        if kind in {"transcript.text.done", "error"}:
                            break
                done = time.monotonic() - start
                print(
                    f"stream {path.name} language={language}: first delta after {first or 0:.2f} s "
                    f"(server CPU {first_cpu if first else 0:.2f} s), {kind} after {done:.2f} s"
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-hour", action="store_true", help="skip the 1 h upload and stream")
    parser.add_argument("--first-delta", action="store_true", help="only the first-delta figures")
    args = parser.parse_args()
    if args.first_delta:
        first_delta(args.skip_hour)
        return
    bombs_and_hour(args.skip_hour)
    burst()
    departed_client()
    first_delta(args.skip_hour)


if __name__ == "__main__":
    main()
