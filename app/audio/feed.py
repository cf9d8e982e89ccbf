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
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

import anyio.to_thread
import numpy as np

from app.audio.chunking import Chunk, Chunker, ChunkingOptions, chunk_frames
from app.audio.pcm import SAMPLE_RATE, Audio, Listener, Pcm16, Samples, Sink
from app.audio.vad import SpeechDetector, detect_speech, is_tonal
from app.errors import ClientGone


class ChunkFeed:
    """An upload's decoded audio and final chunks so far; awaited from the event loop."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []  # final chunks so far (tonal ones dropped), in order
        self.audio: Audio | None = None  # once the whole upload is decoded
        self._sink: Sink | None = None
        self._decoded = 0  # samples kept so far
        self._error: BaseException | None = None
        self._finished = False
        self._stop = threading.Event()
        self._want = 0  # wake waiters once this many samples are decoded (and decode that far)
        self._hold = threading.Condition()  # the decode waits on it after the first chunk
        self._resumed = False
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
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
        feed._loop = asyncio.get_running_loop()
        feed._task = asyncio.ensure_future(anyio.to_thread.run_sync(feed._work, run, opts))
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
        return self._sink.window(start, end).astype(np.float32) / np.float32(32768.0)

    async def first(self) -> Chunk | None:
        """The first chunk, once it is final (None when the upload has no speech)."""
        await self._until(lambda: bool(self.chunks))
        return self.chunks[0] if self.chunks else None

    async def decoded(self, samples: int) -> None:
        """Return once ``samples`` samples are decoded, or the upload ends before them."""
        with self._hold:
            self._want = samples
            self._hold.notify_all()
        await self._until(lambda: self._decoded >= samples)

    def resume(self) -> None:
        """Let the decode go past the first chunk."""
        with self._hold:
            self._resumed = True
            self._hold.notify_all()

    async def all(self) -> list[Chunk]:
        """Every chunk, once the whole upload is decoded (``resume()`` first)."""
        await self._until(lambda: False)
        return self.chunks

    async def close(self) -> None:
        """Stop decoding (if it still runs) and wait for the worker thread to let go."""
        self._stop.set()
        self.resume()
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready() and not self._finished:
            self._changed.clear()
            if ready() or self._finished:
                break
            await self._changed.wait()
        if self._error is not None and not ready():
            raise self._error

    def _work(self, run: Callable[[Listener], Audio], opts: ChunkingOptions) -> None:
        detector, chunker = SpeechDetector(opts.aggressiveness), Chunker(opts)

        def listen(sink: Sink, pcm: Pcm16) -> None:
            if self._stop.is_set():
                raise ClientGone("the request ended before its upload was decoded")
            self._sink = sink
            self._decoded += len(pcm)
            with self._hold:
                reached = 0 < self._want <= self._decoded
                if reached:
                    self._want = 0
            self._publish(chunker.feed(detector.feed(pcm)), reached)
            with self._hold:
                while self.chunks and not self._resumed and self._want <= self._decoded:
                    self._hold.wait()

        try:
            audio = run(listen)
            self.audio = audio
            self._publish(chunker.feed(detector.finish()) + chunker.finish(len(audio.pcm)), False)
        except ClientGone:  # closed: the decode stopped at its next block
            pass
        except BaseException as exc:  # handed to the waiters (a client error, the budget, ...)
            self._error = exc
        finally:
            self._finished = True
            self._notify()

    def _publish(self, chunks: list[Chunk], wake: bool) -> None:
        kept = _speech(chunks, self.window)
        self.chunks += kept
        if kept or wake:
            self._notify()

    def _notify(self) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop has closed (the server is stopping)
            self._loop.call_soon_threadsafe(self._changed.set)


def speech_chunks(audio: Audio, opts: ChunkingOptions) -> list[Chunk]:
    """A whole upload's chunks (for ``ChunkFeed.complete``): VAD over all of it at once."""
    return _speech(
        chunk_frames(detect_speech(audio.pcm, opts.aggressiveness), len(audio.pcm), opts), audio.window
    )


def _speech(chunks: list[Chunk], window: Callable[[int, int], Samples]) -> list[Chunk]:
    """The chunks that are not a steady tone (Whisper invents words over a held chord or a beep)."""
    return [c for c in chunks if not is_tonal(window(c.start, c.end))]
