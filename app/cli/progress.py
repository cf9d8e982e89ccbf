"""What a run shows: tqdm bars on a terminal (one for the run, one per file in progress: audio
seconds done, x real time, ETA), else one plain line per event."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

_FILE_BAR = "{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]"


class Display:
    def __init__(self, files: int, jobs: int, bars: bool | None = None) -> None:
        self.bars = sys.stderr.isatty() if bars is None else bars
        self.free_rows = list(range(jobs, 0, -1))  # bar rows under the run's bar
        self.run = tqdm(total=files, desc="all files", unit="file", position=0, disable=not self.bars)

    def line(self, message: str) -> None:
        if self.bars:
            tqdm.write(message, file=sys.stderr)
        else:
            print(message, flush=True)

    def file(self, name: str) -> FileBar:
        return FileBar(self, name)

    def file_done(self) -> None:
        self.run.update(1)

    def close(self) -> None:
        self.run.close()


class FileBar:
    """One file's progress, from the decoded length to the last chunk's end."""

    def __init__(self, display: Display, name: str) -> None:
        self.display = display
        self.name = name
        self.begun = time.monotonic()
        self.audio_s: float | None = None
        self.done_s = 0.0
        self.bar: tqdm | None = None
        self.row = display.free_rows.pop() if display.bars and display.free_rows else None

    def started(self, audio_s: float | None) -> None:
        self.audio_s = audio_s
        if self.display.bars:
            desc = self.name if len(self.name) <= 30 else "..." + self.name[-27:]
            fmt = _FILE_BAR if audio_s is not None else "{desc} [{elapsed}]"
            self.bar = tqdm(total=audio_s or 1.0, desc=desc, position=self.row, leave=False, bar_format=fmt)
        else:
            length = "" if audio_s is None else f" ({audio_s:.1f} s of audio)"
            self.display.line(f"start {self.name}{length}")

    def advanced(self, audio_s: float) -> None:
        if self.bar is not None and self.audio_s is not None:
            done = min(audio_s, self.audio_s)
            self.bar.update(done - self.done_s)
            self.done_s = done
            self.bar.set_postfix_str(f"{self.speed():.1f}x real time", refresh=True)

    def speed(self) -> float:
        wall = time.monotonic() - self.begun
        return self.done_s / wall if wall > 0 else 0.0

    def finished(self) -> str:
        """Close the bar; a summary of the file's speed for its result line."""
        if self.audio_s is not None:
            self.done_s = self.audio_s
        wall = time.monotonic() - self.begun
        if self.bar is not None:
            self.bar.close()
        if self.row is not None:
            self.display.free_rows.append(self.row)
        if self.audio_s is None:
            return f"{wall:.1f} s"
        return f"{self.audio_s:.1f} s of audio in {wall:.1f} s, {self.speed():.1f}x real time"
