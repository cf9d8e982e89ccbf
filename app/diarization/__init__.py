"""Who spoke when: speaker turns from an embedded speaker encoder, attributed to words and segments.

``start`` runs a file's diarization on the process's one diarization thread (at low priority, never
on the event loop), so requests diarize one after another with bounded memory. Imports only lower
layers (``app.audio``, ``app.engine``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from app.audio.pcm import Pcm16, Samples
from app.diarization.clustering import SpeakerHints
from app.diarization.diarizer import diarize
from app.diarization.turns import Diarization, Turn
from app.engine.batcher import lower_thread_priority

__all__ = ["Diarization", "SpeakerHints", "Turn", "diarize", "start"]

_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize", initializer=lower_thread_priority)


def start(samples: Pcm16 | Samples, hints: SpeakerHints) -> asyncio.Future[Diarization]:
    """Diarize in the background; the future is awaited (or cancelled) by the request."""
    return asyncio.get_running_loop().run_in_executor(_pool, diarize, samples, hints)
