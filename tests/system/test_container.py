"""The container image as ``docker compose up`` runs it: the Dockerfile built with podman (on a
locally made stand-in for ``python:3.12-slim``: no registry is reachable here), run with the compose
file's environment, mounts and health check. It must become healthy, transcribe English and German,
answer diarized_json, run as a non-root user, and stop on SIGTERM within the grace period.

Part of ``make test`` (CI): a cold build (base, wheelhouse, image) takes a few minutes, a warm one
reuses podman's layers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.config import Settings
from tests.support.evalset import clips, wer
from tests.support.harness import REPO, free_port
from tests.support.podman import IMAGE, PIP_SITE_DIR, RUN, build_image, image_size_mb, podman

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICE = COMPOSE["services"]["asr-server"]
NAMED_VOLUMES = COMPOSE.get("volumes") or {}
ENGLISH = next(c for c in clips("short") if c.id == "ls-test-other-1688-142285-0002")
GERMAN = next(c for c in clips("multilingual") if c.id == "fleurs-de-004")
TWO_SPEAKERS = next(c for c in clips("diarization") if c.id == "pyannote-sample")
UVICORN_SHUTDOWN_S = 10  # serve()'s timeout_graceful_shutdown, after the drain


def seconds(duration: str) -> float:
    """A compose duration (``40s``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


@dataclass(frozen=True)
class Running:
    name: str
    base_url: str
    healthy_after_s: float


def compose_run_args(port: int, prefix: str) -> list[str]:
    """``podman run`` arguments for the compose service: its environment, mounts (paths relative to
    the compose file; a named volume as a new podman volume ``prefix``-name, as compose makes it),
    port (published on loopback, on a free port) and health check."""
    (mapping,) = SERVICE["ports"]
    args = ["-p", f"127.0.0.1:{port}:{mapping.split(':')[-1]}"]
    for key, value in SERVICE["environment"].items():
        args += ["-e", f"{key}={value}"]
    for volume in SERVICE["volumes"]:
        source, target, *mode = volume.split(":")
        source = f"{prefix}-{source}" if source in NAMED_VOLUMES else str((REPO / source).resolve())
        args += ["-v", ":".join([source, target, *mode])]
    check = SERVICE["healthcheck"]
    kind, *command = check["test"]
    # CMD runs its arguments as they are (podman takes them as a JSON list); CMD-SHELL through sh.
    health = json.dumps(command) if kind == "CMD" else command[0].replace("$$", "$")
    args += ["--health-cmd", health, "--health-interval", check["interval"]]
    args += ["--health-timeout", check["timeout"], "--health-retries", str(check["retries"])]
    args += ["--health-start-period", check["start_period"]]
    return args


@pytest.fixture(scope="module")
def container() -> Iterator[Running]:
    print(f"\nbuilt: {build_image()}")
    name = f"asr-test-{free_port()}"
    port = free_port()
    started = time.monotonic()
    podman(*RUN[1:], "-d", "--name", name, *compose_run_args(port, name), IMAGE, timeout_s=120)
    try:
        # The health check as the engine runs it, until it passes or its start period and retries end.
        check = SERVICE["healthcheck"]
        limit = seconds(check["start_period"]) + check["retries"] * seconds(check["interval"])
        while podman("healthcheck", "run", name, check=False, timeout_s=30).returncode != 0:
            if time.monotonic() - started > limit:
                logs = podman("logs", name, check=False).stdout
                raise AssertionError(f"not healthy after {limit:.0f} s:\n{logs[-3000:]}")
            time.sleep(1)
        yield Running(name, f"http://127.0.0.1:{port}", time.monotonic() - started)
    finally:
        podman("rm", "-f", "-v", "-t", "0", name, check=False, timeout_s=60)
        for volume in NAMED_VOLUMES:
            podman("volume", "rm", "-f", f"{name}-{volume}", check=False)


def post(running: Running, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as f:
        return httpx.post(
            f"{running.base_url}/v1/audio/transcriptions",
            data={"model": "whisper-1", **fields},
            files={"file": (path.name, f)},
            timeout=300,
        )


def test_the_compose_file_matches_the_image_and_the_server() -> None:
    assert SERVICE["build"] == "." and SERVICE["ports"] == ["8000:8000"]
    for volume in SERVICE["volumes"]:
        source = volume.split(":")[0]
        assert source in NAMED_VOLUMES or (REPO / source).exists(), volume
    drain = Settings().drain_timeout_s
    assert seconds(SERVICE["stop_grace_period"]) >= drain + UVICORN_SHUTDOWN_S
    assert SERVICE["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
    assert "/health" in SERVICE["healthcheck"]["test"][-1]


def test_the_container_becomes_healthy_and_runs_as_a_user(container: Running) -> None:
    print(f"image {image_size_mb():.0f} MB; healthy {container.healthy_after_s:.1f} s after start")
    assert image_size_mb() < 2000
    assert container.healthy_after_s < seconds(SERVICE["healthcheck"]["start_period"])
    assert podman("exec", container.name, "id", "-u").stdout.strip() != "0"
    assert podman("exec", container.name, "ls", "-A", PIP_SITE_DIR).stdout == ""  # the build's wheelhouse
    # The image's own HEALTHCHECK (what `docker run` without compose uses) passes too.
    image_check: dict[str, Any] = json.loads(
        podman("image", "inspect", "--format", "{{json .HealthCheck}}", IMAGE).stdout
    )
    kind, *command = image_check["Test"]
    command = ["sh", "-c", *command] if kind == "CMD-SHELL" else command
    assert podman("exec", container.name, *command, check=False).returncode == 0


def test_the_container_transcribes_english_german_and_speakers(container: Running) -> None:
    english = post(container, ENGLISH.path)
    assert english.status_code == 200, english.text
    assert wer([ENGLISH.text], [english.json()["text"]]) < 0.3
    german = post(container, GERMAN.path, language="de", response_format="verbose_json")
    assert german.status_code == 200, german.text
    assert german.json()["language"].startswith("de")
    assert wer([GERMAN.text], [german.json()["text"]]) < 0.5, german.json()["text"]
    diarized = post(container, TWO_SPEAKERS.path, response_format="diarized_json")
    assert diarized.status_code == 200, diarized.text
    assert len({s["speaker"] for s in diarized.json()["segments"]}) >= 2


def test_sigterm_stops_it_cleanly_within_the_grace_period(container: Running) -> None:
    grace = seconds(SERVICE["stop_grace_period"])
    started = time.monotonic()
    podman("stop", "-t", str(int(grace)), container.name, timeout_s=grace + 30)
    took = time.monotonic() - started
    state = json.loads(podman("inspect", "--format", "{{json .State}}", container.name).stdout)
    assert state["ExitCode"] == 0 and took < grace, (state, took)
