"""Decode an upload, block by block, into 16 kHz mono 16-bit samples, within memory limits.

Containers are told apart by their bytes (``app.audio.sniff``), never by the declared content type (the
AI Refinery SDK labels every upload ``audio/wav``); only an explicit raw-PCM content type
(``audio/pcm``, ``audio/L16``, or G.711's ``audio/basic``, ``audio/pcmu``, ``audio/pcma`` unless the bytes
start with an AU or WAV header) skips sniffing. libsndfile reads WAV/FLAC/OGG/AIFF/MP3, FFmpeg (PyAV,
``app.audio.ffmpeg``) the rest; both hand their blocks to a ``Sink`` (``app.audio.pcm``).
"""

from __future__ import annotations

import io
from typing import BinaryIO, Literal

import numpy as np
import numpy.typing as npt
import soundfile as sf

from app.audio.channels import ChannelSink
from app.audio.g711 import G711_RATE, expand
from app.audio.pcm import (
    MAX_SOURCE_RATE,
    MIN_SOURCE_RATE,
    SAMPLE_RATE,
    SOURCE_SAMPLES_PER_S,
    Audio,
    Charge,
    DecodeLimits,
    Listener,
    PcmFormat,
    Sink,
    clean,
)
from app.audio.sniff import HEAD_BYTES, describe_text, identify, plausible_pcm
from app.errors import InvalidRequest, UnsupportedAudio

_BLOCK_SAMPLES = 1 << 18
_UNKNOWN_FRAMES = 1 << 60  # libsndfile's "unknown length"
# Headerless G.711 content types (``audio/basic`` is 8 kHz mu-law by definition, RFC 2046).
_G711_TYPES: dict[str, Literal["mulaw", "alaw"]] = {
    "audio/basic": "mulaw",
    "audio/pcmu": "mulaw",
    "audio/pcma": "alaw",
}
_G711_HEADERS = (b".snd", b"RIFF", b"RF64")  # an AU or WAV file labelled with a G.711 type


def parse_pcm_content_type(content_type: str | None, default: PcmFormat) -> PcmFormat | None:
    """A ``PcmFormat`` when the content type declares raw PCM (``audio/pcm;rate=8000``), else None."""
    if not content_type:
        return None
    kind, *params = (part.strip() for part in content_type.split(";"))
    kind = kind.lower()
    g711 = _G711_TYPES.get(kind)
    if not g711 and kind not in {"audio/pcm", "audio/l16", "audio/raw", "audio/x-raw", "audio/s16le"}:
        return None
    rate, channels = G711_RATE if g711 else default.sample_rate, default.channels
    little_endian: bool | None = None if kind == "audio/l16" else True
    for param in params:
        name, _, value = param.partition("=")
        name, value = name.strip().lower()[:40], value.strip().strip('"').lower()
        try:
            if name in {"rate", "samplerate", "sample_rate"}:
                rate = int(value[:12])
            elif name == "channels":
                channels = int(value[:12])
            elif name in {"endianness", "endian"}:
                little_endian = value.startswith("little")
        except ValueError:
            raise InvalidRequest(f"bad {name!r} in the file's content type", field="file") from None
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE or not 1 <= channels <= 32:
        raise InvalidRequest("unsupported PCM parameters in the file's content type", field="file")
    if g711:
        if rate != G711_RATE:
            raise InvalidRequest(
                f"{kind} is G.711 at {G711_RATE} Hz; a rate of {rate} Hz is not supported", field="file"
            )
        return PcmFormat(rate, channels, encoding=g711)
    return PcmFormat(rate, channels, little_endian)


def decode_audio(
    source: bytes | BinaryIO,
    *,
    content_type: str | None,
    pcm: PcmFormat,
    max_duration_s: float,
    max_source_samples: int | None = None,
    charge: Charge | None = None,
    listener: Listener | None = None,
    split_channels: int = 0,
) -> Audio:
    """Decode, downmix and resample an upload; raise a client error for anything that is not audio.

    ``charge(nbytes)`` is called before each block of decoded audio is kept (the server's memory
    budget; it may raise to stop the decode); ``listener`` sees each block once it is kept.
    ``split_channels`` > 0 keeps 2 to that many channels apart (``app.audio.channels``): the audio
    is then (frames, channels).
    """
    file = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    size, head, declared_pcm = _opening(file, content_type, pcm)
    limits = DecodeLimits(
        max_duration_s,
        int(max_duration_s * SOURCE_SAMPLES_PER_S) if max_source_samples is None else max_source_samples,
    )
    sink = ChannelSink(limits, charge, split_channels) if split_channels else Sink(limits, charge, listener)
    if declared_pcm is not None:
        return _read_pcm(file, size, declared_pcm, sink, check=False)
    found = identify(head[:HEAD_BYTES])
    if found.decoder != "none" or not found.name:
        opened = _read_soundfile(file, sink)
        if opened is not None:
            return opened
        file.seek(0)
    if found.decoder != "none":
        from app.audio.ffmpeg import decode_with_av  # PyAV loads FFmpeg: only when needed

        return decode_with_av(file, sink, found.name)
    _refuse_non_audio(found.name, head)
    # G.711 named by the ``encoding`` field is read as declared, like a declared content type.
    return _read_pcm(file, size, pcm, sink, check=pcm.encoding == "linear16")


def check_audio(file: BinaryIO, *, content_type: str | None, pcm: PcmFormat) -> None:
    """What ``decode_audio`` refuses before decoding a block, judged as it would (an empty file, a bad
    PCM content type, another kind of file, bytes that are not raw PCM), from the file's header alone:
    a job's upload gets the synchronous endpoint's error before it is queued."""
    size, head, declared_pcm = _opening(file, content_type, pcm)
    if declared_pcm is not None:
        _pcm_frames(size, declared_pcm)
        return
    found = identify(head[:HEAD_BYTES])
    if found.decoder != "none":
        return
    if not found.name:
        try:
            sf.info(file)
            return  # libsndfile reads it
        except (RuntimeError, TypeError, ValueError):
            pass
        finally:
            file.seek(0)
    _refuse_non_audio(found.name, head)
    frame_bytes = _pcm_frames(size, pcm)
    if pcm.encoding == "linear16":
        _check_plausible(*_pcm_head(file, pcm, frame_bytes))


def _opening(file: BinaryIO, content_type: str | None, pcm: PcmFormat) -> tuple[int, bytes, PcmFormat | None]:
    """The upload's size (an error if empty), its first bytes, and the raw PCM format its content
    type declares (None where the bytes must be sniffed: no such type, or an AU or WAV file labelled
    with a G.711 type)."""
    size = file.seek(0, io.SEEK_END)
    file.seek(0)
    if not size:
        raise InvalidRequest("the uploaded file is empty", field="file")
    declared = parse_pcm_content_type(content_type, pcm)
    head = file.read(4096)
    file.seek(0)
    if declared is not None and declared.encoding != "linear16" and head.startswith(_G711_HEADERS):
        declared = None
    return size, head, declared


def _refuse_non_audio(name: str | None, head: bytes) -> None:
    if name:
        raise UnsupportedAudio(f"the uploaded file is {name}, not audio", field="file")
    text = describe_text(head)
    if text is not None:
        raise UnsupportedAudio(
            f"the uploaded file is {text}, not audio (send WAV, FLAC, OGG, MP3, M4A, MP4, WebM, WMA "
            "or raw 16-bit PCM)",
            field="file",
        )


def _read_soundfile(file: BinaryIO, sink: Sink) -> Audio | None:
    """Decode with libsndfile in blocks; None when it does not recognise the bytes."""
    try:
        f = sf.SoundFile(file)
    except (RuntimeError, TypeError, ValueError):  # LibsndfileError: not a format it knows
        return None
    if f.format == "FLAC" and f.frames >= _UNKNOWN_FRAMES:
        # A streamed FLAC (no length in its header, as live encoders and pipes write it) makes
        # libsndfile seek past its end on a file object; FFmpeg reads it through.
        f.close()
        return None
    with f:
        name = f"the {f.format} file"
        frames = f.frames if f.frames < _UNKNOWN_FRAMES else None  # libsndfile's "unknown" is huge
        sink.start(f.samplerate, f.channels, frames, name)
        block_frames = max(1, _BLOCK_SAMPLES // f.channels)
        try:
            while True:
                block = f.read(block_frames, dtype="float32", always_2d=True)
                if not len(block):
                    break
                sink.add(block)
        except (RuntimeError, ValueError) as exc:  # broken after a valid header
            raise UnsupportedAudio(f"{name} could not be decoded: {clean(str(exc))}", field="file") from None
        return sink.finish(f.format.lower())


def _pcm_frames(size: int, fmt: PcmFormat) -> int:
    """Bytes per frame of raw PCM in ``fmt``; an error if ``size`` is no whole number of frames."""
    width, what = (2, "16-bit PCM") if fmt.encoding == "linear16" else (1, f"G.711 {fmt.encoding}")
    frame_bytes = width * fmt.channels
    if size % frame_bytes:
        raise UnsupportedAudio(
            f"not a known audio container, and {size} bytes is not a whole number of "
            f"{fmt.channels}-channel {what} frames",
            field="file",
        )
    return frame_bytes


def _pcm_head(file: BinaryIO, fmt: PcmFormat, frame_bytes: int) -> tuple[bytes, np.dtype[np.int16]]:
    """The first 10 s of raw PCM (whole frames), and the byte order its 16-bit samples are read in
    (declared, or guessed from those 10 s)."""
    head = file.read(frame_bytes // fmt.channels * SAMPLE_RATE * 10 // frame_bytes * frame_bytes)
    file.seek(0)
    little = fmt.little_endian if fmt.little_endian is not None else _guess_little_endian(head)
    return head, np.dtype("<i2" if little else ">i2")


def _check_plausible(head: bytes, dtype: np.dtype[np.int16]) -> None:
    """16-bit samples read from unrecognised bytes must sound like a recording, not data."""
    if not plausible_pcm(np.frombuffer(head, dtype=dtype)):
        raise UnsupportedAudio(
            "the uploaded file is not a known audio container, and its bytes do not sound like raw "
            "16-bit PCM (they look like random or compressed data)",
            field="file",
        )


def _read_pcm(file: BinaryIO, size: int, fmt: PcmFormat, sink: Sink, *, check: bool) -> Audio:
    encoding = fmt.encoding
    frame_bytes = _pcm_frames(size, fmt)
    head, dtype = _pcm_head(file, fmt, frame_bytes)

    def samples(data: bytes) -> npt.NDArray[np.int16]:
        return np.frombuffer(data, dtype=dtype) if encoding == "linear16" else expand(data, encoding)

    if check:
        _check_plausible(head, dtype)
    sink.start(fmt.sample_rate, fmt.channels, size // frame_bytes, "the PCM upload")
    block_bytes = _BLOCK_SAMPLES // fmt.channels * frame_bytes
    while data := file.read(block_bytes):
        ints = samples(data).reshape(-1, fmt.channels)
        sink.add(ints.astype(np.float32) / np.float32(32768.0))
    return sink.finish("pcm" if encoding == "linear16" else encoding)


def _guess_little_endian(data: bytes) -> bool:
    """Speech is low-pass: read with the wrong byte order it turns into white noise.

    So the byte order whose sample-to-sample differences are smaller relative to the signal wins.
    """
    head = data[: len(data) // 2 * 2]

    def roughness(dtype: str) -> float:
        x = np.frombuffer(head, dtype=dtype).astype(np.float64)
        energy = float(np.mean(x**2)) if len(x) else 0.0
        return float(np.mean(np.diff(x) ** 2)) / energy if energy > 0 and len(x) > 1 else 0.0

    return roughness("<i2") <= roughness(">i2")
