"""Utterances found in audio as it arrives, with the HTTP path's VAD (webrtcvad plus its energy floor).

An utterance opens at a speech frame (with ``prefix_padding_ms`` of audio before it) and is announced
once it holds ``min_speech_ms`` of speech, so a click or a breath never starts one; it closes after
``silence_duration_ms`` of non-speech, keeping up to ``suffix_padding_ms`` of it, or is cut at
``max_chunk_s`` (a Whisper window) while the person keeps talking.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np
import webrtcvad

from app.audio.chunking import ChunkingOptions
from app.audio.pcm import Samples
from app.audio.vad import ENERGY_FLOOR_DBFS, FLOOR_BELOW_PEAK_DB, FRAME_MS, FRAME_SAMPLES

# The silence after speech at which an utterance's final decode may start (see ``settled``): 0.35 s
# before the default 500 ms of silence closes it. A pause this long inside an utterance costs a
# decode that is dropped.
EARLY_QUIET_MS = 150


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    start_ms: int  # where the utterance's audio (prefix padding included) starts in the session's audio


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    end_ms: int  # the end of the last speech frame
    audio: Samples  # the utterance with its padding


def _frames(ms: float) -> int:
    return max(1, -(-int(ms) // FRAME_MS))


class LiveSegmenter:
    """Feed 16 kHz samples in any sizes; get ``SpeechStarted`` / ``SpeechStopped`` events back."""

    def __init__(self, opts: ChunkingOptions) -> None:
        self._vad = webrtcvad.Vad(opts.aggressiveness)
        self._silence = _frames(opts.silence_duration_ms)
        self._suffix = int(opts.suffix_padding_ms) // FRAME_MS
        self._early = EARLY_QUIET_MS // FRAME_MS
        self._min_speech = _frames(opts.min_speech_ms)
        self._max_frames = int(opts.max_chunk_s * 1000) // FRAME_MS
        self._lead: collections.deque[Samples] = collections.deque(maxlen=opts.prefix_padding_ms // FRAME_MS)
        self._pending = np.zeros(0, np.float32)
        self._seen = 0  # frames processed
        self._peak_db = -np.inf
        self._reset()

    def _reset(self) -> None:
        self._frames: list[Samples] = []  # the open utterance, prefix padding included
        self._first: int | None = None  # its first speech frame
        self._start = 0  # its first frame
        self._last = 0  # its last speech frame
        self._speech = 0
        self._quiet = 0  # non-speech frames since the last speech frame
        self._announced = False

    @property
    def speaking(self) -> bool:
        """True between ``SpeechStarted`` and ``SpeechStopped``."""
        return self._announced

    def audio(self) -> Samples:
        """The open utterance so far (for partial decodes)."""
        return np.concatenate(self._frames) if self._frames else np.zeros(0, np.float32)

    @property
    def speech_samples(self) -> int:
        """How much of the open utterance's audio, from its start, runs to its last speech frame."""
        return 0 if self._first is None else (self._last + 1 - self._start) * FRAME_SAMPLES

    def settled(self) -> Samples | None:
        """The open utterance as it would close now, once the silence after its last speech frame
        holds EARLY_QUIET_MS (None before that, or when no utterance is announced). If no more
        speech comes it closes with this audio and up to ``suffix_padding_ms`` of silence more,
        which Whisper transcribes alike: its final decode can start before the silence is long
        enough to close it."""
        if not self._announced or self._quiet < max(min(self._early, self._suffix), 1):
            return None
        keep = len(self._frames) - (self._seen - (self._last + 1 + min(self._suffix, self._quiet)))
        return np.concatenate(self._frames[: max(keep, 1)])

    def feed(self, samples: Samples) -> list[SpeechStarted | SpeechStopped]:
        buffered = np.concatenate([self._pending, samples])
        whole = len(buffered) // FRAME_SAMPLES * FRAME_SAMPLES
        self._pending = buffered[whole:]
        events: list[SpeechStarted | SpeechStopped] = []
        for frame in buffered[:whole].reshape(-1, FRAME_SAMPLES):
            events.extend(self._step(frame))
        return events

    def flush(self) -> SpeechStopped | None:
        """Close the open utterance now (a manual commit), announced or not; None when there is none."""
        if self._first is None:
            return None
        return self._stop(self._seen)

    def _is_speech(self, frame: Samples) -> bool:
        level = 20 * np.log10(float(np.sqrt(np.mean(frame**2))) + 1e-10)
        self._peak_db = max(self._peak_db, level)
        if level <= min(ENERGY_FLOOR_DBFS, self._peak_db - FLOOR_BELOW_PEAK_DB):
            return False
        pcm = (np.clip(frame, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        return bool(self._vad.is_speech(pcm, FRAME_SAMPLES * 1000 // FRAME_MS))

    def _step(self, frame: Samples) -> list[SpeechStarted | SpeechStopped]:
        index = self._seen
        self._seen += 1
        speech = self._is_speech(frame)
        if self._first is None:
            if not speech:
                self._lead.append(frame)
                return []
            self._frames, self._first = [*self._lead, frame], index
            self._start = index - len(self._lead)
            self._lead.clear()
        else:
            self._frames.append(frame)
        events: list[SpeechStarted | SpeechStopped] = []
        if speech:
            self._speech, self._last, self._quiet = self._speech + 1, index, 0
        else:
            self._quiet += 1
        if not self._announced and self._speech >= self._min_speech:
            self._announced = True
            events.append(SpeechStarted(self._start * FRAME_MS))
        if self._quiet >= self._silence:
            if self._announced:
                events.append(self._stop(self._last + 1 + min(self._suffix, self._quiet)))
            else:  # too little speech to be an utterance: keep its tail as the next one's prefix
                self._lead.extend(self._frames)
                self._reset()
        elif self._announced and len(self._frames) >= self._max_frames:
            events.append(self._stop(index + 1))
        return events

    def _stop(self, end_frame: int) -> SpeechStopped:
        """Close the utterance, keeping its frames before ``end_frame``."""
        keep = len(self._frames) - (self._seen - end_frame)
        audio = np.concatenate(self._frames[: max(keep, 1)])
        stopped = SpeechStopped(min(self._last + 1, end_frame) * FRAME_MS, audio)
        self._reset()
        return stopped
