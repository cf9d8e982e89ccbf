"""The fleet the system tests run: real replicas on 127.0.0.1 ports behind a real nginx."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.harness import REPO, free_port, start_server, wait_healthy

URL = "/v1/audio/transcriptions"
NGINX_CONF = REPO / "deploy" / "nginx" / "nginx.conf"
PROXY_CONF = REPO / "deploy" / "nginx" / "proxy.conf"
# Short real clips (2-3.5 s): many requests in a short, bounded run.
CLIP_IDS = (
    "ls-test-other-3331-159605-0004",
    "ls-test-other-1998-15444-0008",
    "librivox-sense-and-sensibility-01-0930",
)
STREAM_CLIP_ID = "ls-test-other-3331-159605-0003"  # 5.6 s: a stream still running at SIGTERM
DRAIN_TIMEOUT_S = 30
MEMORY_LIMIT = 3 << 30  # address space per replica (RSS is ~200 MiB)


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@dataclass
class Replica:
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Fleet:
    replicas: list[Replica]
    lb_url: str
    nginx_dir: Path
    expected: dict[str, str]  # clip id -> the text a replica gives it (CPU results do not depend on load)
    audio: dict[str, bytes] = field(default_factory=dict)


def start_replica(tmp: Path, k: int) -> Replica:
    port = free_port()
    log_path = tmp / f"replica{k}.log"
    env = {
        **os.environ,
        "ASR_API_KEYS": "",
        "ASR_LOG_FORMAT": "json",
        "ASR_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S),
        # Three replicas share two cores: one worker thread each.
        "ASR_CPU_THREADS": "1",
        "ASR_MAX_BATCH_SIZE": "1",
        # English replicas: requests without a language stay on tiny.en (no detection on the
        # multilingual model, which three replicas on two cores would each load).
        "ASR_MODELS": json.dumps({"tiny.en": {"multilingual_model": None}}),
    }
    proc = start_server(port, env, log_path, preexec_fn=limit_memory)
    return Replica(port, log_path, proc)


def wait_ready(replica: Replica, timeout_s: float = 180) -> None:
    wait_healthy(replica.proc, replica.url + "/health/ready", replica.log_path.read_text, timeout_s)


def nginx_config(directory: Path, port: int, replicas: list[Replica]) -> str:
    """A temp nginx.conf: the shipped upstream parameters and proxy.conf, on loopback ports."""
    shipped = NGINX_CONF.read_text()
    params = re.search(r"server asr:8000 ([^;]*);", shipped)
    keepalive = re.search(r"keepalive \d+;", shipped)
    assert params and keepalive, "deploy/nginx/nginx.conf has no upstream server line"
    servers = "\n".join(f"        server {r.addr} {params.group(1)};" for r in replicas)
    temp_paths = "\n".join(
        f"    {name}_temp_path {directory}/{name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
pid {directory}/nginx.pid;
worker_processes 1;
error_log {directory}/error.log warn;
events {{ worker_connections 256; }}
http {{
{temp_paths}
    log_format fleet '$status "$request" upstream=$upstream_addr upstream_status=$upstream_status';
    access_log {directory}/access.log fleet;
    upstream asr {{
{servers}
        {keepalive.group(0)}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://asr;
            include {PROXY_CONF};
        }}
    }}
}}
"""


def post(url: str, clip_id: str, audio: bytes, timeout: float = 120) -> httpx.Response:
    return httpx.post(
        url + URL,
        data={"model": "whisper-1"},
        files={"file": (f"{clip_id}.flac", audio, "audio/flac")},
        timeout=timeout,
    )
