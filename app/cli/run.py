"""A run: every file through the backend, at most ``--jobs`` at once; skipped when its outputs exist;
failures collected with their reasons; Ctrl-C finishes what is in progress, a second stops at once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections import Counter

from app.cli.args import Options, decoding_format, parse
from app.cli.backends import Backend, FileFailed, InProcess, OnServer
from app.cli.files import WRITING, Source, find_sources, remove_quietly, write_whole
from app.cli.progress import Display
from app.config import load_settings
from app.errors import AsrError
from app.transcription.params import parse_params

INTERRUPTED = 130  # the shell's status for a run stopped by SIGINT


def main(argv: list[str]) -> int:
    opts = parse(argv)
    try:  # the fields are checked once, not found wrong on every file
        parse_params({"model": "-", **opts.fields, "response_format": decoding_format(opts.formats)})
    except AsrError as exc:
        print(f"asr-server transcribe: {exc.message}", file=sys.stderr)
        return 2
    sources = list(find_sources(opts.paths, opts.out_dir))
    if not sources:
        print("asr-server transcribe: no audio or video files in the paths given", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(_run(opts, sources))


def backend(opts: Options) -> Backend:
    if opts.server is not None:
        return OnServer(opts.server, opts.api_key, opts.fields, opts.task, opts.timeout_s)
    settings = load_settings(opts.config)
    if settings.max_concurrent_requests < opts.jobs:  # every job decodes at once
        settings = settings.model_copy(update={"max_concurrent_requests": opts.jobs})
    return InProcess(settings, opts.fields, opts.task)


class Stopper:
    """The first Ctrl-C lets the files in progress finish and starts no more; the second (or a
    SIGTERM) exits at once. Handled on the event loop, so never in the middle of writing a file."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self.stopping = False
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._interrupt)
        loop.add_signal_handler(signal.SIGTERM, self._now)

    def _interrupt(self) -> None:
        if self.stopping:
            self._now()
        self.stopping = True
        self.display.line("interrupted: finishing the files in progress (Ctrl-C again to stop now)")

    def _now(self) -> None:
        for tmp in list(WRITING):
            remove_quietly(tmp)
        self.display.line("stopped")
        os._exit(INTERRUPTED)


async def _run(opts: Options, sources: list[Source]) -> int:
    display = Display(len(sources), opts.jobs)
    stopper = Stopper(display)
    try:
        worker = backend(opts)
    except (ValueError, OSError) as exc:  # a config file that is missing or wrong
        display.close()
        print(f"asr-server transcribe: {exc}", file=sys.stderr)
        return 2
    slots = asyncio.Semaphore(opts.jobs)
    counts: Counter[str] = Counter()
    failed: list[tuple[Source, str]] = []

    async def one(source: Source) -> None:
        async with slots:
            if stopper.stopping:
                counts["not started"] += 1
                return
            outputs = source.outputs(opts.formats)
            if not opts.overwrite and all(p.exists() for p in outputs.values()):
                counts["skipped"] += 1
                display.line(f"skip  {source.path} (outputs exist; --overwrite to redo)")
                display.file_done()
                return
            bar = display.file(str(source.path))
            try:
                bodies = await worker.transcribe(source.path, opts.formats, bar)
                for fmt, path in outputs.items():
                    write_whole(path, bodies[fmt])
            except Exception as exc:
                bar.finished()
                failed.append((source, reason(exc)))
                display.line(f"FAIL  {source.path}: {reason(exc)}")
            else:
                counts["done"] += 1
                written = ", ".join(str(p) for p in outputs.values())
                display.line(f"done  {source.path} ({bar.finished()}) -> {written}")
            display.file_done()

    try:
        try:
            await worker.start()
        except (AsrError, FileFailed, OSError) as exc:
            print(f"asr-server transcribe: cannot start: {reason(exc)}", file=sys.stderr)
            return 1
        await asyncio.gather(*(one(s) for s in sources))
    finally:
        await worker.aclose()
        display.close()
    parts = [f"{counts[k]} {k}" for k in ("done", "skipped", "not started") if counts[k]]
    print(f"{', '.join([*parts, f'{len(failed)} failed'])} of {len(sources)} files", flush=True)
    for source, why in failed:
        print(f"failed: {source.path}: {why}", flush=True)
    if stopper.stopping:
        return INTERRUPTED
    return 1 if failed else 0


def reason(exc: Exception) -> str:
    if isinstance(exc, AsrError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, FileFailed):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
