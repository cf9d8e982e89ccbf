"""The real client SDKs driving a server: a driver script of ``tests/clients`` run with its venv's
python (``client_venvs``), its one-line JSON result read back."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from tests.support.client_venvs import CLIENTS_DIR, ensure_client_python
from tests.support.harness import REPO, LiveServer


def run_client(venv: str, script: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    python = ensure_client_python(venv)
    proc = subprocess.run(
        [str(python), str(CLIENTS_DIR / script), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **env},
        cwd=REPO,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"{script} printed nothing:\n{proc.stderr[-4000:]}"
    out: dict[str, Any] = json.loads(lines[-1])
    out["_returncode"] = proc.returncode
    out["_stderr"] = proc.stderr[-4000:]
    return out


def sdk_env(server: LiveServer) -> dict[str, str]:
    return {"ASR_TEST_BASE_URL": server.base_url, "ASR_TEST_API_KEY": server.api_key}
