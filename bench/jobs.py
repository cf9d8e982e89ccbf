"""``python -m bench.jobs [--files 20]``: a backlog of eval files as transcription jobs against the same
files sent by 4 concurrent synchronous clients (throughput, audio seconds per wall second), and one
synchronous request's latency idle and while the backlog runs. Issue 30's targets: jobs >= 4 clients,
latency during the backlog <= 1.5x idle. Every job's text is checked against the synchronous answer."""

from __future__ import annotations

import argparse
import mimetypes
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from bench.runners import Item, Server, probe_item
from tests.support.evalset import Clip, clips, normalize, wer

CLIENTS = 4
PROBES = 3
FORM = {"model": "whisper-1"}
TIMEOUT_S = 3600  # a bound on every wait below


@dataclass(frozen=True)
class File:
    clip: Clip
    data: bytes

    def upload(self) -> dict[str, tuple[str, bytes, str]]:
        kind = mimetypes.guess_type(self.clip.path.name)[0] or "application/octet-stream"
        return {"file": (self.clip.path.name, self.data, kind)}


def pick(n: int) -> list[File]:
    """``n`` eval files, the same every run: one long file per 10 (the shortest first, at most all of
    them), the rest short clips spread evenly over the id-sorted list, the long files spread among them."""
    longs = sorted(clips("long"), key=lambda c: c.duration_s)
    longs = longs[: min(len(longs), max(1, n // 10), n)]
    shorts = sorted(clips("short"), key=lambda c: c.id)
    k = n - len(longs)
    chosen = [shorts[i * len(shorts) // k] for i in range(k)]
    for j, clip in enumerate(longs):
        chosen.insert(j * n // len(longs), clip)
    return [File(c, c.path.read_bytes()) for c in chosen]


def transcribe(client: httpx.Client, f: File) -> str:
    r = client.post("/v1/audio/transcriptions", data=FORM, files=f.upload())
    r.raise_for_status()
    return str(r.json()["text"])


def synchronous(server: Server, files: list[File]) -> tuple[float, list[str]]:
    """Wall seconds for CLIENTS clients working through ``files`` (each takes the next), and the texts."""
    texts = [""] * len(files)
    queue = iter(range(len(files)))
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=server.base, timeout=TIMEOUT_S) as c:
            while True:
                with lock:
                    i = next(queue, None)
                if i is None:
                    return
                texts[i] = transcribe(c, files[i])

    start = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        for fut in [pool.submit(client) for _ in range(CLIENTS)]:
            fut.result()
    return time.monotonic() - start, texts


def latency(server: Server, probe: Item) -> float:
    start = time.monotonic()
    r = server.post(probe)
    r.raise_for_status()
    return time.monotonic() - start


def await_job(base: str, job_id: str) -> tuple[float, str]:
    """(monotonic time it was seen finished, its text); fails unless it completed."""
    with httpx.Client(base_url=base, timeout=TIMEOUT_S) as client:
        return _await_job(client, job_id)


def _await_job(client: httpx.Client, job_id: str) -> tuple[float, str]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        r = client.get(f"/v1/audio/jobs/{job_id}", params={"wait": 30})
        r.raise_for_status()
        job = r.json()
        if job["status"] in ("completed", "failed", "cancelled"):
            done = time.monotonic()
            if job["status"] != "completed":
                raise RuntimeError(f"job {job_id} ended {job['status']}: {job.get('error')}")
            result = client.get(f"/v1/audio/jobs/{job_id}/result")
            result.raise_for_status()
            return done, str(result.json()["text"])
    raise TimeoutError(f"job {job_id} did not end within {TIMEOUT_S} s")


def backlog(
    server: Server, files: list[File], probe: Item, expected_s: float
) -> tuple[float, list[str], list[float]]:
    """Wall seconds from the first submit to the last completion, the jobs' texts, and PROBES synchronous
    latencies spread over the backlog (sent at even fractions of ``expected_s``, while jobs remain)."""
    with httpx.Client(base_url=server.base, timeout=TIMEOUT_S) as c, ThreadPoolExecutor(len(files)) as pool:
        start = time.monotonic()
        ids = []
        for f in files:
            r = c.post("/v1/audio/jobs", data=FORM, files=f.upload())
            if r.status_code != 202:
                raise RuntimeError(f"submit {f.clip.id}: {r.status_code} {r.text}")
            ids.append(r.json()["id"])
        waits = [pool.submit(await_job, server.base, i) for i in ids]
        probes = []
        for k in range(PROBES):
            time.sleep(max(0.0, start + expected_s * (k + 1) / (PROBES + 1) - time.monotonic()))
            if all(w.done() for w in waits):
                break
            probes.append(latency(server, probe))
        ends, texts = zip(*(w.result() for w in waits), strict=True)
    return max(ends) - start, list(texts), probes


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs")
    parser.add_argument("--files", type=int, default=20, help="eval files in the backlog (default 20)")
    args = parser.parse_args()
    files = pick(args.files)
    audio_s = sum(f.clip.duration_s for f in files)
    probe = probe_item()
    started_load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as data_dir:
        server = Server({"ASR_JOBS__DATA_DIR": data_dir})
        try:
            server.cold_start(probe)
            idle = [latency(server, probe) for _ in range(PROBES)]
            sync_s, sync_texts = synchronous(server, files)
            jobs_s, job_texts, busy = backlog(server, files, probe, sync_s)
        finally:
            server.close()
    same = sum(normalize(a) == normalize(b) for a, b in zip(sync_texts, job_texts, strict=True))
    idle_p50, busy_p50 = statistics.median(idle), statistics.median(busy) if busy else float("nan")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{len(files)} files, {audio_s:.0f} s of audio; probe: {probe.name} ({probe.duration_s:.1f} s)")
    print(f"load average at the start / the end (1, 5, 15 min): {started_load} / {load}\n")
    print("| measure | value | ratio | target |\n| --- | --- | --- | --- |")
    print(f"| {CLIENTS} synchronous clients | {sync_s:.1f} s, {audio_s / sync_s:.1f}x RT | 1.00 | |")
    print(
        f"| {len(files)} jobs at once | {jobs_s:.1f} s, {audio_s / jobs_s:.1f}x RT "
        f"| {sync_s / jobs_s:.2f} | >= 1.0 |"
    )
    print(f"| probe latency idle (median of {len(idle)}) | {idle_p50:.2f} s | 1.00 | |")
    print(
        f"| probe latency during the backlog (median of {len(busy)}) | {busy_p50:.2f} s "
        f"| {busy_p50 / idle_p50:.2f} | <= 1.5 |"
    )
    print(
        f"| job text = synchronous text (normalised) | {same}/{len(files)}, "
        f"WER jobs vs synchronous {wer(sync_texts, job_texts):.2%} | | all |"
    )
    throughput, slowdown = sync_s / jobs_s, busy_p50 / idle_p50
    print(
        f"\ntarget 1, jobs' throughput >= 4 synchronous clients': {throughput:.2f}x ->",
        _verdict(throughput >= 1),
    )
    print(
        f"target 2, a request during the backlog <= 1.5x idle: {slowdown:.2f}x ->", _verdict(slowdown <= 1.5)
    )


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


if __name__ == "__main__":
    main()
