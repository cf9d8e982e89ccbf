"""An upload decoded with its channels kept apart (``multichannel=true``: a call recorded with one
party per channel), each channel then its own 16 kHz mono ``Audio``.

``ChannelSink`` is the ``Sink`` that keeps every channel (interleaved, resampled together), so the
limits, the header's up-front charge and the block-by-block charge count all of them; mono audio
and more channels than the bound are refused before anything is decoded. ``duck_leaks`` turns each
channel down where it only carries another channel's voice.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from app.audio.pcm import MAX_CHANNELS, SAMPLE_RATE, Audio, Charge, DecodeLimits, Sink
from app.errors import InvalidRequest


class ChannelSink(Sink):
    """A ``Sink`` that keeps 2 to ``max_channels`` channels apart instead of downmixing them."""

    def __init__(self, limits: DecodeLimits, charge: Charge | None, max_channels: int) -> None:
        super().__init__(limits, charge)
        self.max_channels = max_channels

    def start(self, rate: int, channels: int, frames: int | None, what: str) -> None:
        if channels == 1:
            raise InvalidRequest(
                f"multichannel=true transcribes each channel on its own, and {what} is mono (one "
                "channel): send it without multichannel (diarize=true tells speakers apart by voice)",
                field="multichannel",
            )
        if self.max_channels < channels <= MAX_CHANNELS:
            raise InvalidRequest(
                f"multichannel=true transcribes at most {self.max_channels} channels "
                f"(multichannel_max_channels); {what} has {channels}",
                field="multichannel",
            )
        if 2 <= channels <= self.max_channels:
            self.width = channels  # set first: the header's charge and the resampler count them all
        super().start(rate, channels, frames, what)

    def finish(self, source_format: str) -> Audio:
        """The channels as one (frames, channels) array; ``split`` gives each its own ``Audio``."""
        audio = super().finish(source_format)
        return dataclasses.replace(audio, pcm=audio.pcm.reshape(-1, self.width))


# A channel is turned down (by DUCK_GAIN) where another is this much louder over 100 ms: what it
# holds there is that channel's voice leaking in (headset crosstalk, line echo arrive 15-40 dB
# down), which its own VAD would cut into chunks and Whisper would transcribe (colouring the
# talker's own decode). Two people talking at once on levelled lines are well within 15 dB.
DUCK_DB = 15.0
# 30 dB down, not silenced: Whisper misplaces words next to stretches of digital silence.
DUCK_GAIN = 10 ** (-30 / 20)
_DUCK_FRAME = SAMPLE_RATE // 10


def duck_leaks(audio: Audio, below_db: float = DUCK_DB) -> None:
    """Turn down, in place, each channel's 100 ms frames that another channel holds ``below_db``
    louder (a ``ChannelSink``'s (frames, channels) audio)."""
    pcm = audio.pcm
    n = len(pcm) // _DUCK_FRAME
    frames = pcm[: n * _DUCK_FRAME].reshape(n, _DUCK_FRAME, pcm.shape[1])
    level = np.empty((n, pcm.shape[1]))
    for first in range(0, n, 600):  # a minute at a time: no float copy of the whole call
        block = frames[first : first + 600].astype(np.float64)
        level[first : first + 600] = 10 * np.log10(np.mean(block * block, axis=1) + 1.0)
    for c in range(pcm.shape[1]):
        others = np.delete(level, c, axis=1).max(axis=1)
        leaks = others - level[:, c] >= below_db
        frames[leaks, :, c] = (frames[leaks, :, c] * DUCK_GAIN).astype(np.int16)


def split(audio: Audio) -> tuple[Audio, ...]:
    """Each channel of a ``ChannelSink``'s audio as mono ``Audio`` (views: no copy of the samples)."""
    return tuple(dataclasses.replace(audio, pcm=audio.pcm[:, c]) for c in range(audio.pcm.shape[1]))
