"""Seeded fuzzing of real uploads in every format: decoded in-process by the hundred (in a process
under a memory guard), and a bounded number over real HTTP: never a 5xx, a reset or a bare 4xx."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import httpx
import pytest

from tests.support.containers import make_all
from tests.support.evalset import EVAL_DIR
from tests.support.fuzz_decode import mutants
from tests.support.guarded import fake_server, run_guarded

SEED = 20
PER_FILE = 40  # in-process decodes per format
HTTP_UPLOADS = 48


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real recording per format, plus headerless PCM and a 44.1 kHz stereo WAV."""
    folder = tmp_path_factory.mktemp("seeds")
    make_all(folder)
    for name in (
        "ls-test-clean-1221-135766-0001.16k-mono-s16le.pcm",
        "jfk-inaugural-1961-ask-not.44k1-stereo-s16.wav",
    ):
        shutil.copy(EVAL_DIR / "formats" / name, folder / name)
    return folder


def test_mutated_uploads_decode_or_get_a_4xx(seeds: Path) -> None:
    done = run_guarded(
        ["-m", "tests.support.fuzz_decode", str(seeds), str(SEED), str(PER_FILE)], timeout_s=400
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["failures"] == []
    outcomes = summary["outcomes"]
    assert sum(outcomes.values()) == summary["files"] * PER_FILE
    # both sides are exercised: mutants that still decode, and refusals
    assert outcomes.get("decoded", 0) > 0 and outcomes.get("415", 0) > 0, outcomes


def test_mutated_uploads_over_http(seeds: Path, tmp_path: Path) -> None:
    cases = random.Random(SEED).sample(mutants(sorted(seeds.iterdir()), SEED, 8), HTTP_UPLOADS)
    statuses: list[int] = []
    with fake_server(tmp_path, max_audio_s=600) as server, httpx.Client(timeout=60) as client:
        for name, kind, data in cases:
            # one kept-alive connection: a failure must not close it
            r = client.post(
                f"{server.base_url}/v1/audio/transcriptions",
                data={"model": "whisper-1"},
                files={"file": (name, data, "audio/wav")},
            )
            statuses.append(r.status_code)
            assert r.status_code < 500, (name, kind, r.text)
            body = r.json()
            if r.status_code >= 400:
                assert body["success"] is False and isinstance(body["error"], str), body
                assert " at 0x" not in body["error"], body
            else:
                assert body["success"] is True
        assert server.health()["active_requests"] == 0
        assert "Traceback" not in server.log()
    assert 200 in statuses and 415 in statuses, statuses
