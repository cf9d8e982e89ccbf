"""A fleet on this machine: three real replicas (``asr-server`` on the embedded model, each on its
own 127.0.0.1 port) behind a real nginx running the shipped ``deploy/nginx/proxy.conf``, and a real
Prometheus scraping them. One replica is SIGTERMed and another SIGKILLed under load: no client
request may fail, every answer must be the right text, and the drained replica must exit 0.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.evalset import clips, wer
from tests.support.fleet import (
    CLIP_IDS,
    DRAIN_TIMEOUT_S,
    STREAM_CLIP_ID,
    URL,
    Fleet,
    limit_memory,
    nginx_config,
    post,
    start_replica,
    wait_ready,
)
from tests.support.harness import free_port, sse_events, stop


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: `make test` installs it (TEST_APT_PACKAGES)"
    tmp = tmp_path_factory.mktemp("fleet")
    replicas = [start_replica(tmp, k) for k in range(3)]
    nginx_dir = tmp / "nginx"
    nginx_dir.mkdir()
    lb_port = free_port()
    (nginx_dir / "nginx.conf").write_text(nginx_config(nginx_dir, lb_port, replicas))
    lb = subprocess.Popen(
        [
            nginx,
            "-p",
            str(nginx_dir),
            "-c",
            str(nginx_dir / "nginx.conf"),
            "-e",
            str(nginx_dir / "error.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        for replica in replicas:
            wait_ready(replica)
        by_id = {c.id: c for c in clips("short")}
        audio = {i: by_id[i].path.read_bytes() for i in (*CLIP_IDS, STREAM_CLIP_ID)}
        expected = {}
        for clip_id in CLIP_IDS:  # the reference answers, straight from one replica
            r = post(replicas[0].url, clip_id, audio[clip_id])
            assert r.status_code == 200, r.text
            expected[clip_id] = r.json()["text"]
        # The answers are real transcriptions of these clips, not just equal to each other.
        assert wer([by_id[i].text for i in CLIP_IDS], [expected[i] for i in CLIP_IDS]) < 0.25, expected
        yield Fleet(replicas, f"http://127.0.0.1:{lb_port}", nginx_dir, expected, audio)
    finally:
        lb.send_signal(signal.SIGQUIT)
        for p in [lb, *(r.proc for r in replicas)]:
            stop(p, timeout_s=30)


def test_prometheus_scrapes_every_replica(fleet: Fleet, tmp_path: Path) -> None:
    """A real Prometheus (from a temp config on 127.0.0.1) scrapes /metrics of the three replicas."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: `make test` installs it (TEST_APT_PACKAGES)"
    targets = ", ".join(f'"{r.addr}"' for r in fleet.replicas)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: asr\n    static_configs:\n      - targets: [{targets}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=limit_memory,
    )

    def query(expr: str) -> dict[str, float]:
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}, timeout=5)
        if r.status_code != 200:  # 503 while it starts
            return {}
        return {s["metric"].get("instance", ""): float(s["value"][1]) for s in r.json()["data"]["result"]}

    wanted = {r.addr for r in fleet.replicas}
    try:
        deadline = time.monotonic() + 60
        loads: dict[str, float] = {}
        while time.monotonic() < deadline:
            try:
                loads = query('asr_model_loads_total{model="tiny.en"}')
            except httpx.HTTPError:
                loads = {}
            if set(loads) == wanted:
                break
            time.sleep(0.5)
        assert loads == dict.fromkeys(wanted, 1.0)  # each replica loaded its model once
        # The reference answers went to the first replica: its windows, audio and requests show.
        first = fleet.replicas[0].addr
        assert query("asr_windows_decoded_total")[first] >= len(CLIP_IDS)
        assert query("asr_batch_size_windows_count")[first] >= len(CLIP_IDS)
        assert query("asr_audio_seconds_total")[first] > 5.0
        ok = query('asr_http_requests_total{route="/v1/audio/transcriptions",status="200"}')
        assert ok[first] == len(CLIP_IDS)
        assert set(query("process_resident_memory_bytes")) == wanted
        assert query("asr_requests_in_progress") == dict.fromkeys(wanted, 0.0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@dataclass
class Tally:
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def test_fleet_survives_sigterm_and_sigkill_under_load(fleet: Fleet) -> None:
    drained, killed, survivor = fleet.replicas
    stop = threading.Event()
    tally = Tally()

    def client(k: int) -> None:
        n = k
        while not stop.is_set() and n < 400:  # bounded in count and (by stop) in time
            clip_id = CLIP_IDS[n % len(CLIP_IDS)]
            n += 4
            try:
                r = post(fleet.lb_url, clip_id, fleet.audio[clip_id])
                text = r.json().get("text") if r.status_code == 200 else None
                problem = None if text == fleet.expected[clip_id] else f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                problem = repr(exc)
            with tally.lock:
                if problem:
                    tally.failures.append(f"{clip_id}: {problem}")
                else:
                    tally.ok += 1

    clients = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in clients:
        t.start()
    stream_events: list[object] = []
    stream_started = threading.Event()

    def stream_to_drained() -> None:
        with httpx.stream(
            "POST",
            drained.url + URL,
            data={"model": "whisper-1", "stream": "true"},
            files={"file": ("s.flac", fleet.audio[STREAM_CLIP_ID], "audio/flac")},
            timeout=120,
        ) as r:
            stream_events.append(r.status_code)
            stream_started.set()  # the answer has begun: the transcription is running
            stream_events.extend(sse_events(r.read().decode()))

    try:
        warm_up = time.monotonic() + 30
        while tally.ok < 4 and time.monotonic() < warm_up:  # the fleet is under load
            time.sleep(0.2)
        streamer = threading.Thread(target=stream_to_drained)
        streamer.start()
        assert stream_started.wait(timeout=60)
        sigterm_at = time.monotonic()
        drained.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # Draining: still listening, not ready, new work refused with 503 + Retry-After.
        ready = httpx.get(drained.url + "/health/ready", timeout=5)
        refused = post(drained.url, CLIP_IDS[0], fleet.audio[CLIP_IDS[0]], timeout=10)
        killed.proc.send_signal(signal.SIGKILL)
        streamer.join(timeout=120)
        exit_code = drained.proc.wait(timeout=DRAIN_TIMEOUT_S + 20)
        exited_after_s = time.monotonic() - sigterm_at
        time.sleep(3)  # the survivor alone
    finally:
        stop.set()
        for t in clients:
            t.join(timeout=150)

    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["code"] == "draining"
    assert exit_code == 0, drained.log_path.read_text()[-3000:]
    # The stream that was running at SIGTERM finished completely.
    assert stream_events[0] == 200 and stream_events[-1] == "[DONE]", stream_events[-3:]
    done = stream_events[-2]
    assert isinstance(done, dict) and done["type"] == "transcript.text.done"
    reference = next(c.text for c in clips("short") if c.id == STREAM_CLIP_ID)
    assert wer([reference], [done["text"]]) < 0.3
    log = [json.loads(line) for line in drained.log_path.read_text().splitlines() if line.startswith("{")]
    drain_lines = [e["message"] for e in log if e["logger"] == "app.server.drain"]
    in_flight = re.fullmatch(r"draining: (\d+) requests in flight, up to \d+ s", drain_lines[0])
    assert in_flight and int(in_flight.group(1)) >= 1, drain_lines  # at least the stream
    finished = re.fullmatch(r"drained in ([\d.]+) s \(0 requests still in flight\)", drain_lines[-1])
    assert finished, drain_lines
    drained_in = float(finished.group(1))

    assert tally.failures == [], tally.failures[:5]
    assert tally.ok >= 6
    access = (fleet.nginx_dir / "access.log").read_text().splitlines()
    retried = [line for line in access if "upstream_status=" in line and "," in line.split("upstream=")[1]]
    assert retried, "the faults caused no retries: nothing was tested"
    assert all(line.startswith("200 ") for line in access), access  # what the clients got
    print(
        f"\nfleet: {tally.ok} requests ok, {len(tally.failures)} failed; nginx retried {len(retried)} "
        f"(of {len(access)} proxied); drained replica exited {exit_code} {exited_after_s:.2f} s after "
        f"SIGTERM (drain {drained_in:.2f} s); survivor {survivor.addr}"
    )
    for line in retried[:5]:
        print("  nginx:", line)
