"""An upload's chunks, handed over as they become final while the rest is still being decoded.

``ChunkFeed.decode`` runs decode -> VAD -> chunking on a worker thread, a block at a time: each
chunk is handed over once no later audio can change it (``app.audio.chunking``), so a stream's first
window (and the language detection) can start while the rest of a long upload waits. The decode
pauses once the first chunk (and the audio its language is detected on) is there, until
``resume()``: the first window then has the CPU to itself, so the first delta does not grow with
the file's length; the rest is decoded while the delta goes out. A batch request gets a feed that
is complete from the start (``ChunkFeed.complete``): its VAD sees the whole upload at once, as it
always has. Failures found mid-decode (a length no header gave, a file broken halfway) are raised
to whoever waits for chunks past that point.

The worker hands its news to the event loop through one queue (``_Update``s, applied on the loop:
no field is shared), and the loop tells the worker how far to go through one lock (``_Gate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread
import numpy as np

from app.audio.chunking import Chunk, Chunker, ChunkingOptions, chunk_frames
from app.audio.pcm import SAMPLE_RATE, Audio, Listener, Pcm16, Samples, Sink
from app.audio.vad import SpeechDetector, detect_speech, is_tonal
from app.errors import ClientGone


@dataclass(frozen=True, slots=True)
class _Update:
    """What the decode tells the loop: how far it got and its new final chunks; the last update
    also how it ended."""

    decoded: int  # samples kept so far
    chunks: list[Chunk] = field(default_factory=list)  # final since the last update (tonal ones dropped)
    sink: Sink | None = None  # where the samples decoded so far are read (until ``audio``)
    finished: bool = False
    audio: Audio | None = None  # the whole upload, when it was decoded to its end
    error: BaseException | None = None  # what stopped the decode (a client error, the budget, ...)


class _Gate:
    """What the loop tells the decode, under one lock: how far to go past its first chunk, or stop."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._want = 0  # a waiter wants this many samples decoded (0: none)
        self._resumed = False
        self._stopped = False

    def want(self, samples: int) -> None:
        with self._changed:
            self._want = samples
            self._changed.notify_all()

    def resume(self, *, stop: bool = False) -> None:
        with self._changed:
            self._resumed = True
            self._stopped = self._stopped or stop
            self._changed.notify_all()

    def check(self) -> None:
        """``ClientGone`` once the feed is closed (checked as each block comes, and after it)."""
        with self._changed:
            if self._stopped:
                raise ClientGone("the request ended before its upload was decoded")

    def reached(self, decoded: int) -> bool:
        """Whether a waiter wants at most ``decoded`` samples (then it is told, once)."""
        with self._changed:
            reached = 0 < self._want <= decoded
            if reached:
                self._want = 0
            return reached

    def hold(self, decoded: int, paused: bool) -> bool:
        """Wait while ``paused`` (the first chunk is out), unless resumed or more samples are
        wanted; True when woken by a waiter that wants samples already decoded."""
        with self._changed:
            while paused and not self._resumed and self._want <= decoded:
                if self._want > 0:
                    self._want = 0
                    return True
                self._changed.wait()
            self.check()  # (the condition's lock is reentrant)
            return False


class ChunkFeed:
    """An upload's decoded audio and final chunks so far; awaited from the event loop."""

    def __init__(self) -> None:
        # Written on the event loop only, from the decode's updates.
        self.chunks: list[Chunk] = []  # final chunks so far (tonal ones dropped), in order
        self.audio: Audio | None = None  # once the whole upload is decoded
        self._sink: Sink | None = None
        self._decoded = 0  # samples kept so far
        self._error: BaseException | None = None
        self._finished = False
        self._updates: asyncio.Queue[_Update] = asyncio.Queue()  # from the decode's thread
        self._reading = asyncio.Lock()  # one waiter reads the updates at a time; the others see them
        self._gate = _Gate()
        self._task: asyncio.Future[None] | None = None

    @classmethod
    def complete(cls, audio: Audio, chunks: list[Chunk]) -> ChunkFeed:
        feed = cls()
        feed.audio, feed.chunks, feed._decoded, feed._finished = audio, chunks, len(audio.pcm), True
        return feed

    @classmethod
    def decode(cls, run: Callable[[Listener], Audio], opts: ChunkingOptions) -> ChunkFeed:
        """Start ``run(listener)`` (a decode that reports its blocks to ``listener``) on a worker
        thread, cutting what it decodes into chunks as it goes."""
        feed = cls()
        loop, updates = asyncio.get_running_loop(), feed._updates

        def send(update: _Update) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed (the server is stopping)
                loop.call_soon_threadsafe(updates.put_nowait, update)

        feed._task = asyncio.ensure_future(anyio.to_thread.run_sync(feed._work, run, opts, send))
        return feed

    @property
    def duration_s(self) -> float:
        """The upload's length (what was decoded so far, until the decode ends)."""
        return self._decoded / SAMPLE_RATE

    def window(self, start: int, end: int) -> Samples:
        """Samples ``[start, end)`` as float32, from audio decoded so far."""
        if self.audio is not None:
            return self.audio.window(start, end)
        assert self._sink is not None, "no audio decoded yet"
        return _floats(self._sink, start, end)

    async def first(self) -> Chunk | None:
        """The first chunk, once it is final (None when the upload has no speech)."""
        await self._until(lambda: bool(self.chunks))
        return self.chunks[0] if self.chunks else None

    async def decoded(self, samples: int) -> None:
        """Return once ``samples`` samples are decoded, or the upload ends before them."""
        self._gate.want(samples)
        await self._until(lambda: self._decoded >= samples)

    def resume(self) -> None:
        """Let the decode go past the first chunk."""
        self._gate.resume()

    async def all(self) -> list[Chunk]:
        """Every chunk, once the whole upload is decoded (``resume()`` first)."""
        await self._until(lambda: False)
        return self.chunks

    async def close(self) -> None:
        """Stop decoding (if it still runs) and wait for the worker thread to let go."""
        self._gate.resume(stop=True)
        if self._task is not None:
            await asyncio.shield(self._task)
            await self._read(lambda: False)  # its last update: the length it decoded

    async def _until(self, ready: Callable[[], bool]) -> None:
        await self._read(ready)
        if self._error is not None and not ready():
            raise self._error

    async def _read(self, ready: Callable[[], bool]) -> None:
        """Apply the decode's updates until ``ready()`` or the decode has ended."""
        async with self._reading:
            while not ready() and not self._finished:
                update = await self._updates.get()
                if update.sink is not None:
                    self._sink = update.sink
                self._decoded = update.decoded
                self.chunks += update.chunks
                self.audio, self._error, self._finished = update.audio, update.error, update.finished

    def _work(
        self, run: Callable[[Listener], Audio], opts: ChunkingOptions, send: Callable[[_Update], None]
    ) -> None:
        """The worker thread: decode, cut, and send an update whenever a chunk is final, a waiter's
        samples are there, or the decode ends."""
        detector, chunker, gate = SpeechDetector(opts.aggressiveness), Chunker(opts), self._gate
        decoded = 0
        found = False  # a chunk is out: the decode pauses until resumed

        def listen(sink: Sink, pcm: Pcm16) -> None:
            nonlocal decoded, found
            gate.check()
            decoded += len(pcm)
            reached = gate.reached(decoded)
            kept = _speech(chunker.feed(detector.feed(pcm)), lambda start, end: _floats(sink, start, end))
            found = found or bool(kept)
            if kept or reached:
                send(_Update(decoded, kept, sink))
            while gate.hold(decoded, paused=found):
                send(_Update(decoded, [], sink))

        try:
            audio = run(listen)
            kept = _speech(chunker.feed(detector.finish()) + chunker.finish(len(audio.pcm)), audio.window)
            last = _Update(decoded, kept, finished=True, audio=audio)
        except ClientGone:  # closed: the decode stopped after a block
            last = _Update(decoded, finished=True)
        except BaseException as exc:  # handed to the waiters (a client error, the budget, ...)
            last = _Update(decoded, finished=True, error=exc)
        send(last)


def speech_chunks(audio: Audio, opts: ChunkingOptions) -> list[Chunk]:
    """A whole upload's chunks (for ``ChunkFeed.complete``): VAD over all of it at once."""
    return _speech(
        chunk_frames(detect_speech(audio.pcm, opts.aggressiveness), len(audio.pcm), opts), audio.window
    )


def _floats(sink: Sink, start: int, end: int) -> Samples:
    """Samples ``[start, end)`` the sink kept so far, as float32 (what ``Audio.window`` gives)."""
    return sink.window(start, end).astype(np.float32) / np.float32(32768.0)


def _speech(chunks: list[Chunk], window: Callable[[int, int], Samples]) -> list[Chunk]:
    """The chunks that are not a steady tone (Whisper invents words over a held chord or a beep)."""
    return [c for c in chunks if not is_tonal(window(c.start, c.end))]
