"""A fleet on a real PostgreSQL: three real replicas share one job queue and nothing else; one is
SIGKILLed mid-job; every job completes exactly once, its result written once, on any replica. And a
replica's pooled connections: a large upload streaming into the database holds up nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from app.jobs.database import connect
from app.jobs.store import JobStore
from tests.support.evalset import EVAL_DIR
from tests.support.harness import free_port, start_server, stop, wait_healthy
from tests.support.postgres import postgres_cluster

JOBS = "/v1/audio/jobs"
FIELDS = {"model": "whisper-1", "language": "en"}
CLIPS = [  # the three shortest (2.1-2.4 s)
    "short/ls-test-other-3331-159605-0004.flac",
    "short/ls-test-other-367-130732-0006.flac",
    "short/ls-test-other-367-130732-0000.flac",
]
N_JOBS = 30  # ten of each clip


@pytest.fixture
def database() -> Iterator[str]:
    with postgres_cluster() as url:
        yield url


def in_flight(log: str) -> set[str]:
    """The jobs a replica's log shows it running and not (yet) ended."""
    started = {
        line.split("jobs: running ", 1)[1].split()[0] for line in log.splitlines() if "jobs: running " in line
    }
    return {job_id for job_id in started if f"jobs: {job_id} " not in log}


def start(database: str, tmp: Path, k: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    port, log_path = free_port(), tmp / f"replica-{k}.log"
    env = {
        **os.environ,
        "ASR_API_KEYS": "",
        "ASR_JOBS__DATABASE_URL": database,
        "ASR_JOBS__DATA_DIR": str(tmp / f"scratch-{k}"),  # decode scratch only: nothing shared
        "ASR_JOBS__LEASE_S": "3",
        "ASR_CPU_THREADS": "1",  # three replicas on the machine's cores: one model worker each
    }
    proc = start_server(port, env, log_path)
    return proc, f"http://127.0.0.1:{port}", log_path


def test_three_replicas_one_killed(database: str, tmp_path: Path) -> None:
    replicas = [start(database, tmp_path, k) for k in range(3)]
    try:
        for proc, url, log in replicas:
            wait_healthy(proc, f"{url}/health", log.read_text, timeout_s=180)
        audio = {clip: (EVAL_DIR / clip).read_bytes() for clip in CLIPS}
        jobs: dict[str, str] = {}
        for n in range(N_JOBS):
            clip = CLIPS[n % len(CLIPS)]
            url = replicas[n % 3][1]  # accepted by one replica, run by any
            r = httpx.post(f"{url}{JOBS}", data=FIELDS, files={"file": (clip, audio[clip])}, timeout=60)
            assert r.status_code == 202, r.text
            jobs[r.json()["id"]] = clip
        victim, _, victim_log = replicas[0]
        deadline = time.monotonic() + 120
        while not in_flight(victim_log.read_text()):
            assert time.monotonic() < deadline, "replica 0 never ran a job"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed = victim_log.read_text()
        with psycopg.connect(database) as db:
            rows = db.execute(
                "SELECT id FROM jobs WHERE status <> 'running' AND id = ANY(%s)", (list(in_flight(killed)),)
            )
            ended = {row[0] for row in rows.fetchall()}  # written by replica 0 as it died, unlogged
        taken = in_flight(killed) - ended
        assert taken, "replica 0 was killed between jobs"
        survivor = replicas[1][1]
        results: dict[str, str] = {}
        with httpx.Client(base_url=survivor, timeout=60) as client:
            for job_id in jobs:
                deadline = time.monotonic() + 240
                while (job := client.get(f"{JOBS}/{job_id}?wait=20").json())["status"] in {
                    "queued",
                    "running",
                }:
                    assert time.monotonic() < deadline, f"{job_id} did not end: {job}"
                assert job["status"] == "completed", job
                results[job_id] = client.get(f"{JOBS}/{job_id}/result").json()["text"]
            for clip in CLIPS:
                sync = client.post(
                    "/v1/audio/transcriptions", data=FIELDS, files={"file": (clip, audio[clip])}
                )
                texts = {text for job_id, text in results.items() if jobs[job_id] == clip}
                assert texts == {sync.json()["text"]}, (clip, texts)
        logs = "".join(log.read_text() for _, _, log in replicas)
        for job_id in jobs:  # its result written once
            assert logs.count(f"jobs: {job_id} completed") == int(job_id not in ended), job_id
        for job_id in taken:  # another replica took each dead claim
            assert f"jobs: running {job_id} (attempt 2)" in logs, job_id
        ran_on = [sum(f"jobs: running {j}" in log.read_text() for j in jobs) for _, _, log in replicas[1:]]
        assert all(n > 0 for n in ran_on), ran_on  # both survivors took jobs from the shared queue
        with psycopg.connect(database) as db:
            assert db.execute("SELECT COUNT(*) FROM job_audio").fetchone() == (0,)  # audio gone
    finally:
        for proc, _, _ in replicas:
            stop(proc, timeout_s=20)


class SlowUpload:
    """An upload that arrives slowly: its first part at once, the rest when ``more`` is set."""

    def __init__(self) -> None:
        self.started, self.more = threading.Event(), threading.Event()
        self.parts = 0

    def seek(self, offset: int) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        if self.parts == 1:
            self.started.set()
            assert self.more.wait(30)
        self.parts += 1
        return b"\0" * (1 << 20) if self.parts <= 3 else b""


def test_a_long_upload_holds_one_connection_of_the_pool(database: str, tmp_path: Path) -> None:
    store = JobStore(connect(database, tmp_path, pool_size=2))
    upload = SlowUpload()
    with ThreadPoolExecutor(2) as pool:
        storing = pool.submit(store.put_audio, "job_large", upload)  # type: ignore[arg-type]
        try:
            assert upload.started.wait(10), "the upload never started"
            # The queue's calls meanwhile (a claim, a count) are answered, not queued behind it.
            assert pool.submit(store.claim, time.time(), 30).result(timeout=10) is None
            assert pool.submit(store.count, "queued").result(timeout=10) == 0
            assert not storing.done()
        finally:
            upload.more.set()
        storing.result(timeout=30)
    assert store.has_audio("job_large") and len(list(store.audio_parts("job_large"))) == 3
    store.close()
