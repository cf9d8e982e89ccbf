"""FFmpeg (PyAV) decoding for what libsndfile cannot read: AAC/ALAC in m4a/mp4/mov/3gp, Opus/Vorbis
in webm/mkv, WMA, raw ADTS AAC, and the audio track of a video file.

Frames are resampled to 16 kHz mono as they are decoded, so nothing at the source rate piles up. A
recording cut short (a phone that died, an upload stopped early) keeps what decoded before the break.
"""

from __future__ import annotations

import contextlib
import logging
from typing import BinaryIO

import av
import av.container
import numpy as np

from app.audio.pcm import MAX_SOURCE_RATE, MIN_SOURCE_RATE, SAMPLE_RATE, Audio, Sink, clean
from app.errors import AsrError, UnsupportedAudio

logger = logging.getLogger(__name__)

# Broken packets skipped before a file counts as undecodable.
_MAX_BAD_PACKETS = 50
_ERRORS = (av.FFmpegError, ValueError, EOFError, OSError, IndexError)


def decode_with_av(file: BinaryIO, sink: Sink, name: str) -> Audio:
    """Decode the first audio track of ``file`` (named ``name`` in messages) into ``sink``."""
    try:
        return _decode(file, sink, name)
    except AsrError:
        raise
    except Exception as exc:  # FFmpeg's view of a broken file can surprise PyAV: still the file's fault
        logger.warning("PyAV failed on %s: %r", name or "an upload", exc)
        raise UnsupportedAudio(f"{_cap(name)} that could not be decoded", field="file") from None


def _decode(file: BinaryIO, sink: Sink, name: str) -> Audio:
    try:
        container = av.open(file, mode="r", metadata_errors="ignore")
    except _ERRORS as exc:
        raise UnsupportedAudio(
            f"{_cap(name)} that could not be decoded ({_reason(exc)})", field="file"
        ) from None
    if not isinstance(container, av.container.InputContainer):  # pragma: no cover - mode="r"
        raise UnsupportedAudio(f"{_cap(name)} that could not be read", field="file")
    with container:
        stream = next((s for s in container.streams.audio), None)
        if stream is None:
            kinds = ", ".join(sorted({str(s.type) for s in container.streams})) or "no"
            raise UnsupportedAudio(
                f"the uploaded file is {name} with no audio track ({kinds} streams only)",
                field="file",
            )
        codec = stream.codec_context
        if codec is None:
            raise UnsupportedAudio(f"{_cap(name)} whose audio track has no decoder", field="file")
        frames = None
        if stream.duration is not None and stream.time_base is not None:
            frames = int(stream.duration * stream.time_base * (codec.sample_rate or 1))
        sink.start(codec.sample_rate, codec.channels or 1, frames, f"the {stream.codec.name} track")
        # Downmixed, or (multichannel) every channel in the track's own order.
        layout = "mono" if sink.width == 1 else codec.layout.name
        resampler = _resampler(layout)
        bad = 0
        try:
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                except _ERRORS:
                    bad += 1
                    if bad > _MAX_BAD_PACKETS:
                        break
                    continue
                for frame in decoded:
                    if not MIN_SOURCE_RATE <= frame.sample_rate <= MAX_SOURCE_RATE:
                        raise UnsupportedAudio(
                            f"the {stream.codec.name} track has a {frame.sample_rate} Hz frame", field="file"
                        )
                    sink.count_source(frame.samples * len(frame.layout.channels))
                    frame.pts = None
                    try:
                        out = resampler.resample(frame)
                    except ValueError:  # the layout changed mid-stream: start a new resampler
                        _flush(resampler, sink)
                        resampler = _resampler(layout)
                        out = resampler.resample(frame)
                    _keep(out, sink)
        except AsrError:
            raise
        except _ERRORS as exc:
            if not sink.has_audio:
                raise UnsupportedAudio(
                    f"{_cap(name)} that could not be decoded ({_reason(exc)})", field="file"
                ) from None
        _flush(resampler, sink)
        if not sink.has_audio and bad:
            raise UnsupportedAudio(f"{_cap(name)} whose audio could not be decoded", field="file")
        return sink.finish(stream.codec.name)


def _resampler(layout: str) -> av.AudioResampler:
    return av.AudioResampler(format="s16", layout=layout, rate=SAMPLE_RATE)


def _keep(frames: list[av.AudioFrame], sink: Sink) -> None:
    for out in frames:
        sink.keep(out.to_ndarray().reshape(-1).astype(np.int16, copy=False))


def _flush(resampler: av.AudioResampler, sink: Sink) -> None:
    with contextlib.suppress(*_ERRORS):
        _keep(resampler.resample(None), sink)


def _cap(name: str) -> str:
    return f"the uploaded file looks like {name}" if name else "the uploaded file is a container"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return clean(str(exc.strerror))
    return clean(str(exc)) or type(exc).__name__
