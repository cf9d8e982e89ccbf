"""What every tier shares: the repository root, server processes on 127.0.0.1 (a free port, waiting
until healthy, stopping), the live server's description, the fake-engine client builder's type, and
SSE bodies read back as JSON."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]

# The ``make_client`` fixture (tests/conftest.py): keyword args become settings.
MakeClient = Callable[..., TestClient]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[Any], timeout_s: float) -> None:
    """SIGTERM ``proc`` (if it still runs) and wait for it; SIGKILL it if it outlives ``timeout_s``."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


def start_server(
    port: int, env: dict[str, str], log_path: Path, *, append: bool = False, **popen: Any
) -> subprocess.Popen[bytes]:
    """``python -m app`` on 127.0.0.1:``port`` with ``env``, its output in ``log_path``."""
    with log_path.open("ab" if append else "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            **popen,
        )


def wait_healthy(proc: subprocess.Popen[Any], url: str, log: Callable[[], str], timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not healthy at {url} after {timeout_s:.0f} s:\n{log()}")
        time.sleep(0.3)


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    api_key: str  # any key works: the seed-era SDK sends an empty one (its login fails offline)
    log_path: Path
    model_cache_dir: Path | None = None  # where it assembles the multilingual model


def sse_events(body: str) -> list[Any]:
    """The JSON payloads of an SSE body, with the final [DONE] kept as the string."""
    out: list[Any] = []
    for line in body.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out
