"""Decoded audio is held where the budget can count it: what is charged covers what is kept, at every
block, with a length in the header or without one."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from app.audio.pcm import SAMPLE_RATE, DecodeLimits, Pcm16, Samples16, Sink
from tests.support.audiogen import speechlike


def stereo_48k(seconds: float) -> npt.NDArray[np.float32]:
    mono = speechlike(seconds)
    at_48k = np.interp(np.arange(3 * len(mono)) / 3, np.arange(len(mono)), mono).astype(np.float32)
    return np.repeat(at_48k[:, None], 2, axis=1)


@pytest.mark.parametrize("header_length", [True, False])
def test_every_kept_block_was_charged_first(header_length: bool) -> None:
    samples = stereo_48k(40.0)
    charged: list[int] = []
    held: list[int] = []

    def listen(_sink: Sink, pcm: Pcm16) -> None:
        held.append((held[-1] if held else 0) + pcm.nbytes)
        assert sum(charged) >= held[-1]

    sink = Sink(DecodeLimits(600, 10**9), charged.append, listen)
    sink.start(48000, 2, len(samples) if header_length else None, "the test")
    for first in range(0, len(samples), 48000):  # a second at a time, as a decoder hands them over
        sink.add(samples[first : first + 48000])
    audio = sink.finish("flac")
    assert abs(audio.duration_s - 40.0) < 0.1
    assert held[-1] == audio.pcm.nbytes
    if header_length:
        assert charged[0] >= audio.pcm.nbytes - 2 * SAMPLE_RATE // 100  # the header's length, up front
    else:
        assert sum(charged) == audio.pcm.nbytes  # charged as it was kept, nothing more


def test_samples_grow_past_their_reservation_and_read_back_unchanged() -> None:
    store = Samples16()
    store.reserve(1000)
    blocks = [(np.arange(k * 7000, (k + 1) * 7000) % 30000).astype(np.int16) for k in range(40)]  # 560 KB
    for block in blocks:
        before = store.read(0, 2 * 7000)
        store.append(block)
        assert store.read(0, 2 * 7000) == (before or blocks[0].tobytes())
    assert store.capacity >= store.nbytes == sum(b.nbytes for b in blocks)
    assert store.read(2 * 7000 * 39, 10**9) == blocks[-1].tobytes()  # reads stop at what was written
    assert np.array_equal(store.freeze(), np.concatenate(blocks))
