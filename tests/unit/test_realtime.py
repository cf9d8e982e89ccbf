"""The realtime WebSocket contract on the fake engine: events, VAD turns, manual commits, errors,
auth and limits."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import numpy as np
import pytest
import soxr
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from app.audio.pcm import Samples
from app.config import ModelSpec
from tests.support.audiogen import pcm_bytes, silence, speechlike
from tests.support.fakes import FakeEngine
from tests.support.harness import MakeClient

URL = "/v1/realtime?intent=transcription"
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def append(ws: WebSocketTestSession, samples: Samples, rate: int = 24000, step_s: float = 0.1) -> None:
    if rate != 16000:
        samples = soxr.resample(samples, 16000, rate).astype(np.float32)
    pcm = pcm_bytes(samples)
    step = int(rate * step_s) * 2
    for i in range(0, len(pcm), step):
        ws.send_json(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i : i + step]).decode()}
        )


def until(ws: WebSocketTestSession, kind: str, limit: int = 200) -> list[dict[str, Any]]:
    """Events up to and including the first of type ``kind``."""
    events: list[dict[str, Any]] = []
    for _ in range(limit):
        events.append(ws.receive_json())
        if events[-1]["type"] == kind:
            return events
    raise AssertionError(f"no {kind} in {[e['type'] for e in events]}")


def closed(ws: WebSocketTestSession) -> tuple[dict[str, Any], int]:
    """The error event sent before the server closed, and the close code."""
    error = until(ws, "error")[-1]
    message = ws.receive()
    assert message["type"] == "websocket.close", message
    return error, int(message["code"])


def update(ws: WebSocketTestSession, **audio_input: Any) -> dict[str, Any]:
    ws.send_json(
        {"type": "session.update", "session": {"type": "transcription", "audio": {"input": audio_input}}}
    )
    event: dict[str, Any] = ws.receive_json()
    return event


def test_vad_turns_stream_append_only_deltas_then_the_final_decode_completed(
    make_client: MakeClient,
) -> None:
    engine = FakeEngine(previews_say="p")  # previews mishear every word
    client = make_client(engine)
    with client.websocket_connect(URL) as ws:
        created = ws.receive_json()
        assert created["type"] == "session.created"
        assert created["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        updated = update(ws, transcription={"model": "whisper-1", "language": "en", "prompt": "Names."})
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["transcription"]["model"] == "whisper-1"
        append(
            ws, np.concatenate([silence(0.6), speechlike(3.0), silence(1.0), speechlike(1.5), silence(1.0)])
        )
        first = until(ws, COMPLETED)
        second = until(ws, COMPLETED)
    live = client.app.state.realtime  # type: ignore[attr-defined]
    assert live.sessions == 0 and live.partials == 0  # given back when the session ended
    types = [e["type"] for e in first]
    assert types[0] == "input_audio_buffer.speech_started"
    stopped = types.index("input_audio_buffer.speech_stopped")
    assert types[stopped + 1] == "input_audio_buffer.committed"
    assert DELTA in types[:stopped], "no delta while the person was still speaking"
    start_ms, end_ms = first[0]["audio_start_ms"], first[stopped]["audio_end_ms"]
    assert 200 <= start_ms <= 600 and 3300 <= end_ms <= 3800
    deltas = "".join(e["delta"] for e in first if e["type"] == DELTA)
    done = first[-1]
    # completed is the final decode's text, not the previews' words; the deltas took nothing back
    # and their last one adds the final's words after the (misheard) ones already sent.
    assert done["transcript"].startswith("w0 w1 w2") and "p" not in done["transcript"]
    assert deltas.startswith("p0 p1") and deltas.split()[-1] == done["transcript"].split()[-1]
    assert len(deltas.split()) == len(done["transcript"].split())
    assert done["usage"]["type"] == "duration" and 3.0 <= done["usage"]["seconds"] <= 4.5
    assert {e["item_id"] for e in first} == {done["item_id"]}
    committed = next(e for e in second if e["type"] == "input_audio_buffer.committed")
    assert committed["previous_item_id"] == done["item_id"]
    # finals are beam search with the prompt and the previous utterance's text; partials are greedy
    finals = [o for o in engine.options if o.beam_size > 1]
    assert finals[-1].prompt == f"Names. {done['transcript']}" and finals[-1].language == "en"
    assert any(o.beam_size == 1 and o.preview for o in engine.options)
    assert all(o.short_window for o in engine.options)  # live decodes encode a 10 s window where it fits
    # each utterance's final decode ran once: started early, in the silence, and kept at the commit
    assert len(finals) == 2


def test_manual_commits_clear_and_the_beta_session_update(client: TestClient) -> None:
    with client.websocket_connect(URL) as ws:
        ws.receive_json()
        ws.send_json(
            {
                "type": "transcription_session.update",
                "event_id": "u1",
                "session": {
                    "input_audio_format": "pcm16",
                    "turn_detection": None,
                    "include": ["item.input_audio_transcription.logprobs"],
                },
            }
        )
        updated = ws.receive_json()
        assert updated["type"] == "transcription_session.updated"
        assert updated["session"]["turn_detection"] is None
        append(ws, speechlike(1.0))
        ws.send_json({"type": "input_audio_buffer.clear"})
        assert ws.receive_json()["type"] == "input_audio_buffer.cleared"
        ws.send_json({"type": "input_audio_buffer.commit", "event_id": "c1"})
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"]["event_id"] == "c1"
        assert "buffer too small" in error["error"]["message"]
        append(ws, np.concatenate([speechlike(2.0), silence(0.5)]))
        ws.send_json({"type": "input_audio_buffer.commit"})
        events = until(ws, COMPLETED)
    assert [e["type"] for e in events] == ["input_audio_buffer.committed", DELTA, COMPLETED]
    assert events[-1]["transcript"] == events[1]["delta"] and events[1]["delta"].startswith("w0 w1 w2 w3")
    assert isinstance(events[-1]["logprobs"], list)


@pytest.mark.parametrize(
    ("message", "param", "mentions"),
    [
        ("not json", None, "not valid JSON"),
        ('{"type": "response.create"}', "type", "unsupported event type"),
        ('{"type": "input_audio_buffer.append", "audio": "%%%"}', "audio", "base64"),
        ('{"type": "input_audio_buffer.append", "audio": "AAAA"}', "audio", "16-bit"),
        ('{"type": "session.update", "session": {"type": "realtime"}}', "session", "transcription"),
        (
            '{"type": "session.update", "session": {"type": "transcription", "include": ["x"]}}',
            "session.include",
            "unsupported",
        ),
        (
            '{"type": "session.update", "session": {"type": "transcription", '
            '"audio": {"input": {"format": {"type": "audio/pcm", "rate": 8000}}}}}',
            "session",
            "rate",
        ),
        (
            '{"type": "session.update", "session": {"type": "transcription", '
            '"audio": {"input": {"transcription": {"model": "nope"}}}}}',
            "model",
            "does not exist",
        ),
        (
            '{"type": "session.update", "session": {"type": "transcription", '
            '"audio": {"input": {"transcription": {"language": "fr"}}}}}',
            "session.audio.input.transcription.language",
            "English-only",
        ),
    ],
)
def test_bad_client_events_get_error_events_and_the_session_goes_on(
    client: TestClient, message: str, param: str | None, mentions: str
) -> None:
    with client.websocket_connect(URL) as ws:
        ws.receive_json()
        ws.send_text(message)
        error = ws.receive_json()
        assert error["type"] == "error", error
        assert error["error"]["param"] == param and mentions.lower() in error["error"]["message"].lower()
        ws.send_bytes(b"\x00\x01")
        assert "JSON text" in ws.receive_json()["error"]["message"]
        assert update(ws, turn_detection=None)["type"] == "session.updated"


def test_an_invalid_client_event_s_error_echoes_its_event_id(client: TestClient) -> None:
    with client.websocket_connect(URL) as ws:
        ws.receive_json()
        ws.send_json({"type": "session.update", "event_id": "bad-1", "session": {"type": "realtime"}})
        ws.send_json({"type": "input_audio_buffer.append", "event_id": "bad-2", "audio": "not base64!"})
        ws.send_json({"type": "response.create", "event_id": "bad-3"})
        errors = [ws.receive_json() for _ in range(3)]
    assert [e["error"]["event_id"] for e in errors] == ["bad-1", "bad-2", "bad-3"]
    assert [e["error"]["param"] for e in errors] == ["session", "audio", "type"]


def test_api_key_from_a_header_or_the_browser_subprotocol(make_client: MakeClient) -> None:
    client = make_client(api_keys=("k1",))
    with client.websocket_connect(URL) as ws:
        error, code = closed(ws)
    assert code == 1008 and error["error"]["code"] == "unauthorized"
    with client.websocket_connect(URL, headers={"Authorization": "Bearer k2"}) as ws:
        assert closed(ws)[1] == 1008
    with client.websocket_connect(URL, headers={"Authorization": "Bearer k1"}) as ws:
        assert ws.receive_json()["type"] == "session.created"
    with client.websocket_connect(URL, subprotocols=["realtime", "openai-insecure-api-key.k1"]) as ws:
        assert ws.accepted_subprotocol == "realtime"
        assert ws.receive_json()["type"] == "session.created"


def test_limits_close_with_an_error_event_and_a_code(make_client: MakeClient) -> None:
    client = make_client(realtime={"max_sessions": 1, "max_message_kb": 4, "max_session_s": 1.0})
    with client.websocket_connect(URL) as first:
        first.receive_json()
        with client.websocket_connect(URL) as second:
            error, code = closed(second)
        assert code == 1013 and error["error"]["code"] == "server_busy"
        first.send_text(json.dumps({"type": "input_audio_buffer.append", "audio": "A" * 8000}))
        error, code = closed(first)
        assert code == 1009 and "limited to 4096 bytes" in error["error"]["message"]
    with client.websocket_connect("/v1/realtime?intent=conversation") as ws:
        error, code = closed(ws)
    assert code == 1008 and error["error"]["param"] == "intent"
    with client.websocket_connect(URL) as ws:  # the slot was given back; this one runs out of time
        error, code = closed(ws)
    assert code == 1008 and error["error"]["code"] == "session_expired"


def test_a_session_that_sends_nothing_is_closed(make_client: MakeClient) -> None:
    client = make_client(realtime={"idle_timeout_s": 0.3})
    with client.websocket_connect(URL) as ws:
        ws.receive_json()
        update(ws, turn_detection=None)
        for _ in range(4):  # a client that keeps sending stays, past the idle timeout
            append(ws, speechlike(0.1))
            time.sleep(0.1)
        ws.send_json({"type": "input_audio_buffer.commit"})
        until(ws, COMPLETED)
        error, code = closed(ws)  # then sends nothing
    assert code == 1008 and error["error"]["code"] == "idle_timeout"


def test_a_session_the_server_cannot_keep_up_with_is_closed(make_client: MakeClient) -> None:
    client = make_client(engine=FakeEngine(delay_s=2.0), realtime={"max_backlog_s": 3.0})
    with client.websocket_connect(URL) as ws:
        update(ws, turn_detection=None)
        for _ in range(3):
            append(ws, speechlike(1.2))
            ws.send_json({"type": "input_audio_buffer.commit"})
        error, code = closed(ws)
    assert code == 1013 and "falling behind" in error["error"]["message"]


def test_a_language_the_english_model_cannot_take_goes_to_its_multilingual_partner(
    make_client: MakeClient, fake_engine: FakeEngine
) -> None:
    """The HTTP path's routing: ``fr`` on whisper-1 (tiny.en) is decoded by its multilingual model."""
    multilingual = FakeEngine(english_only=False, hears="fr")
    models = {
        "tiny.en": ModelSpec(aliases=("whisper-1",), multilingual_model="base"),
        "base": ModelSpec(path="embedded-multilingual"),
    }
    client = make_client(models=models, others={"base": multilingual})
    with client.websocket_connect(URL) as ws:
        ws.receive_json()
        assert update(ws, transcription={"model": "whisper-1", "language": "fr"})["type"] == "session.updated"
        append(ws, np.concatenate([silence(0.6), speechlike(2.0), silence(1.0)]))
        until(ws, COMPLETED)
    assert multilingual.options and all(o.language == "fr" for o in multilingual.options)
    assert not fake_engine.options  # the English model decoded nothing
