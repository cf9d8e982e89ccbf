"""G.711, telephone audio: 8-bit mu-law (``PCMU``) and A-law (``PCMA``) samples at 8 kHz, expanded
to 16-bit linear PCM by lookup table (the standard library's ``audioop`` is gone from Python 3.13).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

# How headerless samples are stored: signed 16-bit, or one G.711 byte each.
Encoding = Literal["linear16", "mulaw", "alaw"]
G711_RATE = 8000  # G.711 is defined at 8 kHz


def _mulaw_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256) & 0xFF  # stored inverted
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> npt.NDArray[np.int16]:
    code = np.arange(256) ^ 0x55  # even bits stored inverted
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


_TABLES = {"mulaw": _mulaw_table(), "alaw": _alaw_table()}


def expand(data: bytes, encoding: Literal["mulaw", "alaw"]) -> npt.NDArray[np.int16]:
    """G.711 bytes -> 16-bit linear samples (one per byte)."""
    return _TABLES[encoding][np.frombuffer(data, np.uint8)]
