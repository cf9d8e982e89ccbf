"""A job's audio: a file under ``jobs.data_dir`` written whole (a temporary name, then renamed), or
with PostgreSQL parts in the database (any replica may run the job) copied to a local file to
decode; deleted when the job ends."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from app.jobs.store import JobStore

_BLOCK = 1 << 20


def sha256_of(source: BinaryIO) -> str:
    """The SHA-256 of ``source`` from its start, read a block at a time."""
    digest = hashlib.sha256()
    source.seek(0)
    while block := source.read(_BLOCK):
        digest.update(block)
    return digest.hexdigest()


class AudioFiles:
    def __init__(self, data_dir: Path, in_database: bool) -> None:
        self.root = data_dir / "audio"
        self.in_database = in_database

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

    def save(self, job_id: str, source: BinaryIO, store: JobStore) -> None:
        """Store ``source`` (from its start) as the job's audio, a block at a time."""
        if self.in_database:
            store.put_audio(job_id, source)
            return
        source.seek(0)
        with self.writing(job_id) as out:
            while block := source.read(_BLOCK):
                out.write(block)

    def has(self, job_id: str, store: JobStore) -> bool:
        return self.path(job_id).exists() or (self.in_database and store.has_audio(job_id))

    def local(self, job_id: str, store: JobStore) -> Path:
        """The job's audio as a local file (copied from the database, a part at a time)."""
        path = self.path(job_id)
        if self.in_database and not path.exists():
            with self.writing(job_id) as out:
                for part in store.audio_parts(job_id):
                    out.write(part)
        return path

    def delete(self, job_id: str) -> None:
        for path in (self.path(job_id), self.path(job_id).with_suffix(".part")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
