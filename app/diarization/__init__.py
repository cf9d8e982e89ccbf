"""Who spoke when: speaker turns from an embedded speaker encoder, attributed to words and segments.

``DiarizationWorker.start`` runs a file's diarization on the app's one diarization thread (at low
priority, never on the event loop), so requests diarize one after another with bounded memory; the
app's lifespan shuts the worker down. Imports only lower layers (``app.audio``, ``app.engine``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from app.audio.pcm import Pcm16, Samples
from app.diarization.clustering import SpeakerHints
from app.diarization.diarizer import diarize
from app.diarization.known import KnownSpeakers, name_speakers
from app.diarization.turns import Diarization, Turn
from app.engine.batcher import lower_thread_priority

__all__ = ["Diarization", "DiarizationWorker", "KnownSpeakers", "SpeakerHints", "Turn", "diarize"]


def diarize_and_name(
    samples: Pcm16 | Samples, hints: SpeakerHints, known: KnownSpeakers | None
) -> Diarization:
    """Who spoke when, and who they are where ``known`` speakers' references match their voices."""
    found = diarize(samples, hints)
    return found if known is None else name_speakers(found, known)


class DiarizationWorker:
    """One low-priority thread that diarizes files one after another (started on first use)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def start(
        self, samples: Pcm16 | Samples, hints: SpeakerHints, known: KnownSpeakers | None = None
    ) -> asyncio.Future[Diarization]:
        """Diarize (and name the ``known`` speakers) in the background; the future is awaited (or
        cancelled) by the request."""
        if self._pool is None:  # (a new one after ``close``: an app's lifespan may run again, in tests)
            self._pool = ThreadPoolExecutor(1, "diarize", initializer=lower_thread_priority)
        return asyncio.get_running_loop().run_in_executor(self._pool, diarize_and_name, samples, hints, known)

    def close(self) -> None:
        """Drop the files still queued and let the thread end after the one it is on (at shutdown)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
