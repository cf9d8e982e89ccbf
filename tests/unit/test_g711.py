"""Telephone audio (G.711 mu-law / A-law, 8 kHz) on the fake engine: the expansion tables, raw and
AU uploads, the ``encoding`` field, and realtime sessions in ``audio/pcmu`` / ``g711_alaw``."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from app.audio.decode import decode_audio
from app.audio.g711 import expand
from app.audio.pcm import SAMPLE_RATE, PcmFormat, Samples
from app.errors import InvalidRequest, UnsupportedAudio
from tests.support.audiogen import silence, speechlike, white_noise

URL = "/v1/realtime?intent=transcription"
UPLOAD = "/v1/audio/transcriptions"
COMPLETED = "conversation.item.input_audio_transcription.completed"
SUBTYPE = {"mulaw": "ULAW", "alaw": "ALAW"}


def at_8k(samples: Samples) -> Samples:
    resampled: Samples = soxr.resample(samples, SAMPLE_RATE, 8000).astype(np.float32)
    return resampled


def g711(samples: Samples, encoding: str, container: str = "RAW") -> bytes:
    """8 kHz samples encoded by libsndfile (an implementation independent of the server's)."""
    buf = io.BytesIO()
    sf.write(buf, samples, 8000, format=container, subtype=SUBTYPE[encoding])
    return buf.getvalue()


def decode(data: bytes, content_type: str | None, pcm: PcmFormat | None = None):  # type: ignore[no-untyped-def]
    return decode_audio(data, content_type=content_type, pcm=pcm or PcmFormat(), max_duration_s=600)


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_every_g711_code_expands_as_libsndfile_does(encoding: str) -> None:
    codes = bytes(range(256))
    reference = sf.read(
        io.BytesIO(codes), format="RAW", subtype=SUBTYPE[encoding], samplerate=8000, channels=1, dtype="int16"
    )[0]
    assert np.array_equal(expand(codes, encoding), reference)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("audio/basic", "mulaw"),
        ("audio/pcmu;rate=8000", "mulaw"),
        ("audio/PCMU", "mulaw"),
        ("audio/pcma; rate=8000", "alaw"),
    ],
)
def test_raw_g711_declared_by_content_type_decodes_to_the_speech(content_type: str, encoding: str) -> None:
    speech = at_8k(speechlike(2.0))
    audio = decode(g711(speech, encoding), content_type)
    assert audio.source_sample_rate == 8000 and audio.source_format == encoding
    assert abs(audio.duration_s - 2.0) < 0.01
    heard = soxr.resample(audio.to_float(), SAMPLE_RATE, 8000)[: len(speech)]
    assert np.corrcoef(heard, speech[: len(heard)])[0, 1] > 0.99


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_g711_wav_and_au_decode_whatever_type_they_are_labelled(encoding: str) -> None:
    speech = at_8k(speechlike(1.0))
    raw = decode(g711(speech, encoding), "audio/pcmu" if encoding == "mulaw" else "audio/pcma").pcm
    for container, label in [("WAV", "audio/wav"), ("AU", "audio/basic"), ("AU", "audio/pcmu")]:
        audio = decode(g711(speech, encoding, container), label)  # the header is read, not played
        assert audio.source_format == container.lower()
        assert np.array_equal(audio.pcm, raw), (container, label)


def test_encoding_field_reads_headerless_g711_labelled_wav() -> None:
    speech = at_8k(speechlike(1.0))
    audio = decode(g711(speech, "alaw"), "audio/wav", PcmFormat(8000, encoding="alaw"))
    assert audio.source_format == "alaw" and abs(audio.duration_s - 1.0) < 0.01
    # a container is still read from its header, and what is not audio is still refused by name
    assert (
        decode(g711(speech, "mulaw", "WAV"), "audio/wav", PcmFormat(8000, encoding="alaw")).source_format
        == "wav"
    )
    with pytest.raises(UnsupportedAudio, match="PNG"):
        decode(b"\x89PNG\r\n\x1a\n" + bytes(800), "audio/wav", PcmFormat(8000, encoding="alaw"))
    with pytest.raises(UnsupportedAudio, match="text"):
        decode(b"a transcript, not the call\n" * 40, "audio/wav", PcmFormat(8000, encoding="alaw"))


@pytest.mark.parametrize(
    "content_type", ["audio/pcmu;rate=16000", "audio/basic; rate=44100", "audio/pcma;rate=x"]
)
def test_g711_content_type_with_another_rate_is_refused(content_type: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        decode(g711(at_8k(speechlike(0.5)), "mulaw"), content_type)
    assert "8000" in error.value.message or "rate" in error.value.message


def post(client: TestClient, data: dict[str, str], audio: bytes, content_type: str) -> Any:
    return client.post(UPLOAD, data=data, files={"file": ("call.raw", audio, content_type)})


def test_uploads_of_raw_g711_by_content_type_or_encoding_field(client: TestClient) -> None:
    speech = at_8k(np.concatenate([silence(0.5), speechlike(1.5), silence(0.5)]))
    verbose = {"model": "whisper-1", "response_format": "verbose_json"}
    for encoding, fields, content_type in [
        ("mulaw", {}, "audio/basic"),
        ("alaw", {}, "audio/pcma;rate=8000"),
        ("mulaw", {"encoding": "mulaw"}, "audio/wav"),  # the AI Refinery SDK labels everything WAV
        ("alaw", {"encoding": "PCMA", "sample_rate": "8000"}, "application/octet-stream"),
    ]:
        r = post(client, {**verbose, **fields}, g711(speech, encoding), content_type)
        assert r.status_code == 200, r.text
        assert r.json()["text"] and abs(r.json()["duration"] - 2.5) < 0.01, (fields, content_type)


@pytest.mark.parametrize(
    ("fields", "content_type", "mentions"),
    [
        ({"encoding": "mulaw", "sample_rate": "16000"}, "audio/wav", "8000"),
        ({"encoding": "opus"}, "audio/wav", "encoding"),
        ({}, "audio/pcmu;rate=16000", "8000"),
    ],
)
def test_bad_g711_uploads_are_400(
    client: TestClient, fields: dict[str, str], content_type: str, mentions: str
) -> None:
    r = post(client, {"model": "whisper-1", **fields}, g711(at_8k(speechlike(1.0)), "mulaw"), content_type)
    assert r.status_code == 400, r.text
    assert r.json()["success"] is False and mentions in r.json()["error"]


# --- realtime ---------------------------------------------------------------------------------


def until(ws: WebSocketTestSession, kind: str, limit: int = 200) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for _ in range(limit):
        events.append(ws.receive_json())
        if events[-1]["type"] == kind:
            return events
    raise AssertionError(f"no {kind} in {[e['type'] for e in events]}")


def stream(ws: WebSocketTestSession, data: bytes, step: int = 799) -> None:
    """Appends of an odd size: G.711 is one byte a sample."""
    for i in range(0, len(data), step):
        ws.send_json(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(data[i : i + step]).decode()}
        )


def test_realtime_audio_pcmu_is_echoed_and_transcribed(client: TestClient) -> None:
    speech = at_8k(np.concatenate([silence(1.0), speechlike(2.0), silence(1.0)]))
    with client.websocket_connect(URL) as ws:
        ws.receive_json()
        audio_input = {"format": {"type": "audio/pcmu"}, "turn_detection": {"type": "server_vad"}}
        ws.send_json(
            {"type": "session.update", "session": {"type": "transcription", "audio": {"input": audio_input}}}
        )
        updated = ws.receive_json()
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        stream(ws, g711(speech, "mulaw"))
        events = until(ws, COMPLETED)
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    # 8 kHz bytes are timed as 8 kHz samples (the start includes the 300 ms of prefix padding)
    assert 600 <= started["audio_start_ms"] <= 800, started
    assert events[-1]["transcript"].startswith("w0 w1 w2")  # the fake engine: a word per loud 0.5 s


def test_realtime_beta_g711_alaw_is_echoed_in_the_beta_spelling(client: TestClient) -> None:
    speech = at_8k(np.concatenate([speechlike(1.5), silence(0.3)]))
    with client.websocket_connect(URL) as ws:
        ws.receive_json()
        session = {"input_audio_format": "g711_alaw", "turn_detection": None}
        ws.send_json({"type": "transcription_session.update", "session": session})
        updated = ws.receive_json()
        assert updated["type"] == "transcription_session.updated"
        assert updated["session"]["input_audio_format"] == "g711_alaw"
        stream(ws, g711(speech, "alaw"))
        ws.send_json({"type": "input_audio_buffer.commit"})
        done = until(ws, COMPLETED)[-1]
        assert done["transcript"].startswith("w0 w1") and done["usage"]["seconds"] == pytest.approx(
            1.8, abs=0.05
        )
        # back to PCM16 at 24 kHz, GA spelling
        ws.send_json(
            {
                "type": "session.update",
                "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm"}}}},
            }
        )
        fmt = ws.receive_json()["session"]["audio"]["input"]["format"]
    assert fmt == {"type": "audio/pcm", "rate": 24000}


@pytest.mark.parametrize(
    ("session", "mentions"),
    [
        (
            {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu", "rate": 16000}}}},
            "8000",
        ),
        (
            {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcma", "rate": 24000}}}},
            "8000",
        ),
        ({"type": "transcription", "audio": {"input": {"format": {"type": "audio/opus"}}}}, "audio/pcmu"),
        ({"type": "transcription", "audio": {"input": {"format": {"type": 711}}}}, "audio/pcma"),
        ({"input_audio_format": "g711_mulaw"}, "g711_ulaw"),
    ],
)
def test_unknown_formats_and_rates_get_error_events_and_the_session_goes_on(
    client: TestClient, session: dict[str, Any], mentions: str
) -> None:
    kind = "session.update" if "type" in session else "transcription_session.update"
    with client.websocket_connect(URL) as ws:
        ws.receive_json()
        ws.send_json({"type": kind, "event_id": "bad", "session": session})
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        assert error["error"]["param"] == "session" and mentions in error["error"]["message"], error
        # the session keeps its format (PCM16 at 24 kHz): an odd number of bytes is still refused
        ws.send_json({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x00" * 3).decode()})
        assert "16-bit" in ws.receive_json()["error"]["message"]


def test_white_noise_in_pcmu_is_no_speech(client: TestClient) -> None:
    with client.websocket_connect(URL) as ws:
        ws.receive_json()
        audio_input = {"format": {"type": "audio/pcmu"}, "turn_detection": None}
        ws.send_json(
            {"type": "session.update", "session": {"type": "transcription", "audio": {"input": audio_input}}}
        )
        ws.receive_json()
        stream(ws, g711(at_8k(white_noise(1.0, level=0.001)), "mulaw"))
        ws.send_json({"type": "input_audio_buffer.commit"})
        assert until(ws, COMPLETED)[-1]["transcript"] == ""
