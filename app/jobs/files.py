"""A job's audio on disk: written whole (a temporary name, then renamed), deleted when the job ends."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_BLOCK = 1 << 20


class AudioFiles:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "audio"

    def path(self, job_id: str) -> Path:
        return self.root / job_id

    @contextlib.contextmanager
    def writing(self, job_id: str) -> Iterator[BinaryIO]:
        """A file to write the job's audio into; it gets the job's name only once written whole."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(job_id)
        partial = final.with_suffix(".part")
        try:
            with partial.open("wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            partial.rename(final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()

    def save(self, job_id: str, source: BinaryIO) -> str:
        """Copy ``source`` (from its start) to the job's file, a block at a time; its SHA-256."""
        digest = hashlib.sha256()
        source.seek(0)
        with self.writing(job_id) as out:
            while block := source.read(_BLOCK):
                digest.update(block)
                out.write(block)
        return digest.hexdigest()

    def delete(self, job_id: str) -> None:
        for path in (self.path(job_id), self.path(job_id).with_suffix(".part")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
