"""Fixtures: apps on the fake engine, and a real server (real model, real HTTP on 127.0.0.1).

Each test is marked with its tier, the folder it lives in (``unit``, ``integration``, ``system``),
so ``pytest -m unit`` selects the same tests as ``pytest tests/unit``."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import ModelSpec, Settings
from app.main import create_app
from tests.support.fakes import FakeEngine
from tests.support.harness import REPO, LiveServer, MakeClient, free_port, start_server, stop, wait_healthy

TIERS = ("unit", "integration", "system")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.path).relative_to(REPO / "tests").parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(
                f"{item.nodeid}: a test lives in tests/unit, tests/integration or tests/system"
            )
        item.add_marker(tier)


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


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
        "ASR_JOBS__DATA_DIR": str(tmp_path_factory.mktemp("jobs")),
        # Beside the configured models: tiny.en with no multilingual partner (it cannot translate).
        "ASR_MODELS": json.dumps({"tiny.en-alone": {"path": "embedded"}}),
    }
    proc = start_server(port, env, log_path)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, f"{base_url}/health", log_path.read_text, timeout_s=180)
        yield LiveServer(base_url, key, log_path, model_cache_dir)
    finally:
        stop(proc, timeout_s=20)
        shutil.rmtree(model_cache_dir, ignore_errors=True)  # 145 MB; pytest keeps old temporary folders
