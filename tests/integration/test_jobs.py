"""Transcription jobs on the real server (real model, real process, loopback HTTP): a server
SIGKILLed with jobs queued and one running loses nothing once started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.evalset import EVAL_DIR
from tests.support.harness import REPO, free_port, stop, wait_healthy

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
def server(data_dir: Path, log_path: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "ASR_API_KEYS": "",
        "ASR_JOBS__DATA_DIR": str(data_dir),
        "ASR_JOBS__LEASE_S": "2",  # a dead server's job is taken again 2 s after its last heartbeat
        "ASR_JOBS__MAX_RUNNING": "1",
    }
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
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
