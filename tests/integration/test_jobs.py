"""Transcription jobs on the real server (real model, real process, loopback HTTP): a server
SIGKILLed with jobs queued and one running loses nothing once started again; a large upload is
stored with flat memory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.evalset import EVAL_DIR
from tests.support.harness import free_port, start_server, stop, wait_healthy

JOBS = "/v1/audio/jobs"
LONG = "short/ls-test-other-1688-142285-0003.flac"  # 5 s: still running when the server dies
FIELDS = {"model": "whisper-1", "language": "en"}  # English: no detection on the multilingual model
CLIPS = [
    ("short/ls-test-other-3331-159605-0004.flac", "json"),
    ("short/ls-test-other-367-130732-0006.flac", "text"),
    ("short/ls-test-other-1998-15444-0008.flac", "srt"),
    ("short/librivox-sense-and-sensibility-01-0880.flac", "verbose_json"),
    ("short/ls-test-other-3331-159605-0001.flac", "vtt"),
]


@contextmanager
def server(data_dir: Path, log_path: Path, port: int, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        **settings,
        "ASR_API_KEYS": "",
        "ASR_JOBS__DATA_DIR": str(data_dir),
        "ASR_JOBS__LEASE_S": "2",  # a dead server's job is taken again 2 s after its last heartbeat
        "ASR_JOBS__MAX_RUNNING": "1",
    }
    proc = start_server(port, env, log_path, append=True)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}/health", log_path.read_text, timeout_s=180)
        yield proc
    finally:
        stop(proc, timeout_s=20)


def submit(client: httpx.Client, path: str, fmt: str) -> str:
    audio = (EVAL_DIR / path).read_bytes()
    r = client.post(JOBS, data={**FIELDS, "response_format": fmt}, files={"file": (path, audio)})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_sigkill_loses_nothing(tmp_path: Path) -> None:
    data_dir, log_path, port = tmp_path / "data", tmp_path / "server.log", free_port()
    base = f"http://127.0.0.1:{port}"
    with server(data_dir, log_path, port) as proc, httpx.Client(base_url=base, timeout=60) as client:
        jobs = {submit(client, LONG, "json"): (LONG, "json")}
        jobs |= {submit(client, path, fmt): (path, fmt) for path, fmt in CLIPS}
        first = next(iter(jobs))
        deadline = time.monotonic() + 60
        while client.get(f"{JOBS}/{first}").json()["status"] != "running":
            assert time.monotonic() < deadline, "the first job never started"
            time.sleep(0.05)
        statuses = [client.get(f"{JOBS}/{j}").json()["status"] for j in jobs]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert statuses == ["running"] + ["queued"] * len(CLIPS)
    killed_log = log_path.read_text()
    with server(data_dir, log_path, port), httpx.Client(base_url=base, timeout=60) as client:
        for job_id, (path, fmt) in jobs.items():
            deadline = time.monotonic() + 120
            while (job := client.get(f"{JOBS}/{job_id}?wait=10").json())["status"] not in {
                "completed",
                "failed",
                "cancelled",
            }:
                assert time.monotonic() < deadline, f"{job_id} did not end: {job}"
            assert job["status"] == "completed", job
            result = client.get(f"{JOBS}/{job_id}/result")
            sync = client.post(
                "/v1/audio/transcriptions",
                data={**FIELDS, "response_format": fmt},
                files={"file": (path, (EVAL_DIR / path).read_bytes())},
            )
            assert result.status_code == sync.status_code == 200
            assert result.text == sync.text and result.text.strip()
            assert result.headers["content-type"] == sync.headers["content-type"]
    log = log_path.read_text()
    for job_id in jobs:
        assert log.count(f"jobs: {job_id} completed") == 1  # written once, by the second server
        assert f"jobs: {job_id} completed" not in killed_log
    assert f"jobs: running {first} (attempt 2)" in log  # the killed claim was taken again
    assert not list((data_dir / "audio").iterdir())  # each job's audio went when it ended


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def test_large_upload_is_stored_with_flat_memory(tmp_path: Path) -> None:
    """1 GB of WAV (a header claiming hours of audio): the upload streams to disk and into the
    job's file a block at a time; the server's peak RSS grows by far less than the upload."""
    size = 1 << 30
    header = b"RIFF" + (size - 8).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    header += (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (16000).to_bytes(4, "little")
    header += (32000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    header += b"data" + (size - 44).to_bytes(4, "little")

    def body() -> Iterator[bytes]:
        yield header
        block = bytes(1 << 20)
        for _ in range((size - len(header)) // len(block)):
            yield block

    data_dir, log_path, port = tmp_path / "data", tmp_path / "server.log", free_port()
    with server(data_dir, log_path, port, ASR_MAX_UPLOAD_MB="1100", ASR_MAX_AUDIO_S="60") as proc:
        before = peak_rss_mb(proc.pid)
        boundary = "jobsboundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()

        def multipart() -> Iterator[bytes]:
            yield head
            yield from body()
            yield f"\r\n--{boundary}--\r\n".encode()

        r = httpx.post(
            f"http://127.0.0.1:{port}{JOBS}",
            content=multipart(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            timeout=300,
        )
        assert r.status_code == 202, r.text
        grown = peak_rss_mb(proc.pid) - before
        job = httpx.get(f"http://127.0.0.1:{port}{JOBS}/{r.json()['id']}?wait=30", timeout=60).json()
    assert grown < 64, f"peak RSS grew {grown:.0f} MB for a 1 GB upload"
    # Hours of audio over max_audio_s: refused from the header when the job runs, nothing decoded.
    assert job["status"] == "failed" and job["error"]["code"] == "upload_too_large", job
