"""Encoder outputs that language detection made, kept for the decode of the same window.

A request without a language is detected on the multilingual model's encoder output for its first
window; when that model then decodes the window, it takes this output instead of encoding the window
again (on CPU about half the cost of a short clip on base).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

import numpy as np

from app.audio.pcm import Samples

# A few requests' worth (~3 MB each on base): one not taken (routed to another model) soon goes.
_KEPT = 4


def _digest(samples: Samples) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(samples).tobytes(), digest_size=16).digest()


class DetectedEncodings:
    """Encoder outputs by their window's samples (a digest of them), each taken at most once."""

    def __init__(self) -> None:
        self._kept: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, samples: Samples, encoded: np.ndarray) -> None:
        with self._lock:
            self._kept[_digest(samples)] = encoded
            while len(self._kept) > _KEPT:
                self._kept.popitem(last=False)

    def take(self, samples: Samples) -> Future[Any] | None:
        """The output kept for exactly these samples, as a done future (None when there is none)."""
        if not self._kept:
            return None
        with self._lock:
            found = self._kept.pop(_digest(samples), None)
        if found is None:
            return None
        future: Future[Any] = Future()
        future.set_result(found)
        return future
