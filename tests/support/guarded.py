"""Server processes under a memory guard, and what they spend, read from /proc.

A bomb that got past the limits could take the shared machine down, so each process runs under
RLIMIT_AS: it dies instead (and the test fails) where it would have grown without bound.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.harness import REPO, free_port, stop, wait_healthy

GUARD_BYTES = 3 << 30


def _guard() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (GUARD_BYTES, GUARD_BYTES))


def run_guarded(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """A Python module run in its own process under the memory guard."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        preexec_fn=_guard,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    )


def status_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB (VmRSS, VmHWM, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@dataclass(frozen=True)
class Server:
    base_url: str
    port: int
    pid: int
    log_path: Path

    def health(self) -> dict[str, object]:
        response = httpx.get(f"{self.base_url}/health", timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def fake_server(tmp_path: Path, delay_s: float = 0.0, **settings: object) -> Iterator[Server]:
    """``tests.support.fake_server`` on a free loopback port under the memory guard; keyword args become
    ``ASR_*`` settings."""
    port = free_port()
    env = {
        **os.environ,
        "ASR_HOST": "127.0.0.1",
        "ASR_PORT": str(port),
        "ASR_API_KEYS": "",
        "FAKE_DELAY_S": str(delay_s),
        "OPENBLAS_NUM_THREADS": "1",
        **{f"ASR_{k.upper()}": str(v) for k, v in settings.items()},
    }
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_server"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_guard,
        )
    server = Server(f"http://127.0.0.1:{port}", port, proc.pid, log_path)
    try:
        wait_healthy(proc, f"{server.base_url}/health", server.log, timeout_s=60)
        yield server
        assert proc.poll() is None, f"the server died:\n{server.log()[-3000:]}"
    finally:
        stop(proc, timeout_s=15)
