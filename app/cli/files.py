"""Which files a run transcribes, where each one's outputs go, and writing them whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Audio and video containers the decoders read (app/audio/sniff.py picks the decoder by content).
MEDIA_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".mp3", ".mpga", ".mpeg", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".weba"}
    | {".webm", ".wma", ".amr", ".aif", ".aiff", ".caf", ".au"}
    | {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".3gp", ".wmv", ".ts", ".mts"}  # video: its sound track
)
# Output file suffix of each response format (txt is the ``text`` format).
SUFFIXES = {
    "text": ".txt",
    "srt": ".srt",
    "vtt": ".vtt",
    "json": ".json",
    "verbose_json": ".verbose.json",
    "diarized_json": ".diarized.json",
}
TEMP_PREFIX = ".asr-partial-"  # outputs are written under this name, then renamed
# Temporary files being written now: removed if the run is stopped at once (a second Ctrl-C).
WRITING: set[str] = set()
UMASK = os.umask(0o022)
os.umask(UMASK)


@dataclass(frozen=True, slots=True)
class Source:
    """One file to transcribe and the stem its outputs are named after (``dir/name`` + suffix)."""

    path: Path
    out_stem: Path

    def outputs(self, formats: Iterable[str]) -> dict[str, Path]:
        return {f: self.out_stem.with_name(self.out_stem.name + SUFFIXES[f]) for f in formats}


def find_sources(paths: Iterable[Path], out_dir: Path | None) -> Iterator[Source]:
    """Files as given (any extension) and media files under folders, recursively, sorted; outputs go
    beside each file, or under ``out_dir`` keeping the folder's layout."""
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.suffix.lower() in MEDIA_EXTENSIONS):
                if found.is_file() and not found.name.startswith(TEMP_PREFIX):
                    rel = found.relative_to(path)
                    base = found.parent if out_dir is None else out_dir / path.name / rel.parent
                    yield Source(found, base / found.stem)
        else:  # a missing file fails when it is opened, with its reason in the report
            yield Source(path, (path.parent if out_dir is None else out_dir) / path.stem)


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename, so the
    path holds either its old content or all of the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=path.suffix, dir=path.parent)
    WRITING.add(tmp)
    try:
        os.chmod(tmp, 0o666 & ~UMASK)  # as open() would make it (mkstemp makes it private)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    finally:
        WRITING.discard(tmp)


def remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
