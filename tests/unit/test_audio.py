"""Decoding: containers sniffed from bytes, raw PCM, downmix/resample, and clear refusals."""

from __future__ import annotations

import numpy as np
import pytest

from app.audio.decode import decode_audio, parse_pcm_content_type
from app.audio.pcm import SAMPLE_RATE, PcmFormat
from app.errors import InvalidRequest, UnsupportedAudio, UploadTooLarge
from tests.support.audiogen import pcm_bytes, speechlike, tone, wav_bytes

PCM = PcmFormat()


def decode(data: bytes, content_type: str | None = "audio/wav", max_s: float = 3600.0):  # type: ignore[no-untyped-def]
    return decode_audio(data, content_type=content_type, pcm=PCM, max_duration_s=max_s)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "ULAW"])
def test_wav_subtypes_decode_to_16k_mono(subtype: str) -> None:
    audio = decode(wav_bytes(tone(1.0), subtype=subtype))
    assert audio.source_format == "wav"
    assert abs(audio.duration_s - 1.0) < 0.01
    assert audio.to_float().dtype == np.float32
    assert 0.25 < float(np.abs(audio.to_float()).max()) < 0.35


def test_stereo_44k1_is_downmixed_and_resampled() -> None:
    signal = tone(2.0, hz=440.0)
    resampled = np.interp(np.arange(int(2.0 * 44100)) / 44100, np.arange(len(signal)) / 16000, signal)
    audio = decode(wav_bytes(resampled.astype(np.float32), rate=44100, channels=2))
    assert audio.source_sample_rate == 44100 and audio.source_channels == 2
    assert abs(len(audio.to_float()) - 2 * SAMPLE_RATE) <= 2
    spectrum = np.abs(np.fft.rfft(audio.to_float()))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(audio.to_float()) - 440) < 2


def test_headerless_pcm_is_read_as_s16le_even_when_labelled_wav() -> None:
    samples = speechlike(1.0)
    audio = decode(pcm_bytes(samples), content_type="audio/wav")
    assert audio.source_format == "pcm"
    assert np.allclose(audio.to_float(), samples, atol=1e-3)


def test_pcm_content_type_sets_rate() -> None:
    samples = tone(1.0, hz=300)
    audio = decode(pcm_bytes(samples), content_type="audio/pcm;rate=8000")
    assert audio.source_sample_rate == 8000
    assert abs(audio.duration_s - 2.0) < 0.01  # 16000 samples at 8 kHz


def test_l16_byte_order_is_detected() -> None:
    samples = speechlike(1.0)
    audio = decode(pcm_bytes(samples, big_endian=True), content_type="audio/L16;rate=16000")
    assert np.allclose(audio.to_float(), samples, atol=1e-3)
    audio = decode(pcm_bytes(samples), content_type="audio/L16;rate=16000")
    assert np.allclose(audio.to_float(), samples, atol=1e-3)


def test_parse_pcm_content_type() -> None:
    assert parse_pcm_content_type("audio/wav", PCM) is None
    fmt = parse_pcm_content_type("audio/pcm; rate=8000; channels=2", PCM)
    assert fmt == PcmFormat(8000, 2, True)
    with pytest.raises(InvalidRequest):
        parse_pcm_content_type("audio/pcm;rate=fast", PCM)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", InvalidRequest),
        (b"hello, this is a text file and not audio at all\n" * 20, UnsupportedAudio),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, UnsupportedAudio),
        (b"RIFF\x10\x00\x00\x00WAVEfmt garbage here", UnsupportedAudio),
        (b"\x01\x02\x03", UnsupportedAudio),  # odd length: not 16-bit PCM either
    ],
)
def test_bad_uploads_are_refused_with_client_errors(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode(data)


def test_too_long_audio_is_refused() -> None:
    with pytest.raises(UploadTooLarge):
        decode(wav_bytes(tone(3.0)), max_s=2.0)
