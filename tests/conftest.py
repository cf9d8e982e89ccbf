"""Fixtures: apps on the fake engine, and a real server (real model, real HTTP on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import ModelSpec, Settings
from app.main import create_app
from tests.fakes import FakeEngine

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(fake_engine: FakeEngine) -> Iterator[MakeClient]:
    """Build a TestClient over the app with the fake engine; keyword args become settings."""
    clients: list[TestClient] = []

    def make(
        engine: FakeEngine | None = None, others: dict[str, FakeEngine] | None = None, **settings: Any
    ) -> TestClient:
        """``others``: more loaded engines by model id. Unless ``models`` is given, tiny.en is the only
        model (English-only, no multilingual partner)."""
        settings.setdefault("models", {"tiny.en": ModelSpec(aliases=("Azure/AI-Transcription", "whisper-1"))})
        app = create_app(Settings(**settings), engines={"tiny.en": engine or fake_engine, **(others or {})})
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


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


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real ``asr-server`` command on the embedded model, on a free loopback port."""
    port = free_port()
    key = "any-key"
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    model_cache_dir = tmp_path_factory.mktemp("model-cache")
    env = {
        **os.environ,
        "ASR_API_KEYS": "",
        "ASR_LOG_LEVEL": "info",
        "ASR_MODEL_CACHE_DIR": str(model_cache_dir),
        # Beside the configured models: tiny.en with no multilingual partner (it cannot translate).
        "ASR_MODELS": json.dumps({"tiny.en-alone": {"path": "embedded"}}),
    }
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, f"{base_url}/health", log_path.read_text, timeout_s=180)
        yield LiveServer(base_url, key, log_path, model_cache_dir)
    finally:
        stop(proc, timeout_s=20)
        shutil.rmtree(model_cache_dir, ignore_errors=True)  # 145 MB; pytest keeps old temporary folders
