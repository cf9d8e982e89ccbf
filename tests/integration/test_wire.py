"""The served /openapi.json against what the endpoints really answer, on the fake engine: every
response_format, the stream events, the error envelopes, the system bodies and a realtime session's
events each validate against the schema the document gives for them. The schemas are made strict
(no undocumented keys) so that a field the document forgets fails as surely as a missing one."""

from __future__ import annotations

import base64
import copy
import gc
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import soxr
from fastapi.testclient import TestClient

from app.audio.chunking import Chunk
from app.config import SubtitleSettings
from app.diarization.turns import Diarization, Turn
from app.engine import Segment, TokenLogprob, Word
from app.jobs_config import JobsSettings
from app.transcription.render import render_body
from app.transcription.result import ChunkResult, Transcription
from tests.integration.test_api_speakers import two_speakers
from tests.support.audiogen import pcm_bytes, silence, speechlike
from tests.support.fakes import FakeEngine
from tests.support.harness import MakeClient, sse_events
from tests.unit.test_api import speech_wav
from tests.unit.test_languages import ROUTED

FORMATS = ["json", "text", "verbose_json", "diarized_json", "srt", "vtt"]
WORDS_SEGMENTS_LOGPROBS = {"timestamp_granularities": '["word", "segment"]', "include[]": "logprobs"}
# (path, response_format, extra fields, diarized audio): each format once, plus the optional parts
CASES = [
    *[("/v1/audio/transcriptions", f, {}, f == "diarized_json") for f in FORMATS],
    *[("/v1/audio/translations", f, {}, False) for f in ["json", "text", "verbose_json", "srt", "vtt"]],
    ("/v1/audio/transcriptions", "json", WORDS_SEGMENTS_LOGPROBS, False),
    ("/v1/audio/transcriptions", "verbose_json", WORDS_SEGMENTS_LOGPROBS, False),
    (
        "/v1/audio/transcriptions",
        "verbose_json",
        {"timestamp_granularities[]": "word", "diarize": "true"},
        True,
    ),
]


@pytest.fixture
def routed(make_client: MakeClient) -> TestClient:
    """tiny.en with a multilingual partner, so that translations are served too."""
    return make_client(
        FakeEngine(), others={"base": FakeEngine(english_only=False, hears="de")}, models=ROUTED
    )


def strict(node: Any) -> Any:
    """A copy of a schema in which no object takes keys its properties do not name."""
    if isinstance(node, dict):
        node = {k: strict(v) for k, v in node.items()}
        if "properties" in node:
            node.setdefault("additionalProperties", False)
        return node
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


class Document:
    """The served OpenAPI document, and checks of answers against it."""

    def __init__(self, client: TestClient) -> None:
        self.doc = client.get("/openapi.json").json()
        self.components = strict(copy.deepcopy(self.doc["components"]))

    def check(self, schema: dict[str, Any], value: Any) -> None:
        jsonschema.Draft202012Validator({**strict(schema), "components": self.components}).validate(value)

    def content(self, path: str, status: int, method: str = "post") -> dict[str, Any]:
        """The documented content of an answer, by media type."""
        content: dict[str, Any] = self.doc["paths"][path][method]["responses"][str(status)]["content"]
        return content

    def check_answer(self, path: str, response: Any, method: str = "post") -> None:
        """A real answer's body against the schema documented for its status and media type."""
        media_type = response.headers["content-type"].split(";")[0]
        documented = self.content(path, response.status_code, method)
        assert media_type in documented, (path, response.status_code, media_type, list(documented))
        schema = documented[media_type]["schema"]
        if media_type == "text/event-stream":
            events = sse_events(response.text)
            assert events, response.text
            for event in events:
                if event != "[DONE]":
                    self.check(schema, event)
        elif media_type == "application/json":
            self.check(schema, response.json())
        else:
            self.check(schema, response.text)

    def schema(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}


def post(client: TestClient, path: str, audio: bytes, **data: str) -> Any:
    return client.post(
        path, data={"model": "whisper-1", **data}, files={"file": ("a.wav", audio, "audio/wav")}
    )


@pytest.mark.parametrize(("path", "response_format", "extras", "diarized"), CASES, ids=lambda c: str(c))
def test_every_format_is_the_documented_shape(
    routed: TestClient, path: str, response_format: str, extras: dict[str, str], diarized: bool
) -> None:
    document = Document(routed)
    audio = two_speakers()[1] if diarized else speech_wav()
    r = post(routed, path, audio, response_format=response_format, **extras)
    assert r.status_code == 200, r.text
    document.check_answer(path, r)


def stream_types(document: Document, r: Any) -> list[str]:
    document.check_answer("/v1/audio/transcriptions", r)
    return [e if e == "[DONE]" else e["type"] for e in sse_events(r.text)]


def test_stream_events_are_the_documented_events(routed: TestClient) -> None:
    document = Document(routed)
    url, audio = "/v1/audio/transcriptions", two_speakers()[1]
    everything = {"stream": "true", **WORDS_SEGMENTS_LOGPROBS}
    seen = stream_types(document, post(routed, url, audio, **everything))
    seen += stream_types(document, post(routed, url, audio, **everything, diarize="true"))
    seen += stream_types(document, post(routed, url, audio, stream="true", response_format="diarized_json"))
    assert set(seen) == {
        "transcript.text.delta",
        "transcript.word",
        "transcript.segment",
        "transcript.text.segment",
        "transcript.text.done",
        "[DONE]",
    }


def test_a_failed_stream_ends_with_the_documented_error_event(make_client: MakeClient) -> None:
    client = make_client(FakeEngine(delay_s=0.6))
    document = Document(client)
    r = post(client, "/v1/audio/transcriptions", speech_wav(), stream="true", timeout="0.3")
    assert stream_types(document, r)[-1] == "error"


def test_errors_are_the_documented_envelope(make_client: MakeClient) -> None:
    url, wav = "/v1/audio/transcriptions", speech_wav()
    client = make_client()
    answers = [
        post(client, url, wav, response_format="xml"),
        post(client, url, wav, model="no-such-model"),
        post(client, url, b"not audio at all" * 100),
        post(make_client(api_keys=["k"]), url, wav),
        post(make_client(max_upload_mb=0.01), url, wav),
        post(make_client(FakeEngine(delay_s=0.6)), url, wav, timeout="0.3"),
    ]
    assert [r.status_code for r in answers] == [400, 404, 415, 401, 413, 504]
    document = Document(client)
    for r in answers:
        document.check_answer(url, r)
    assert "param" in answers[0].json() and "param" not in answers[-1].json()  # absent, not null
    keyed = make_client(api_keys=["k"])
    no_key = [("/v1/models", keyed.get("/v1/models"), "get")]
    no_key.append(("/authentication/validate", keyed.post("/authentication/validate"), "post"))
    for path, r, method in no_key:
        assert r.status_code == 401
        document.check_answer(path, r, method)


def test_system_bodies_are_the_documented_shapes(routed: TestClient) -> None:
    document = Document(routed)
    for path in ["/health", "/health/live", "/health/ready", "/v1/models"]:
        document.check_answer(path, routed.get(path), "get")
    document.check_answer("/v1/models/{model_name}", routed.get("/v1/models/whisper-1"), "get")
    document.check_answer("/authentication/validate", routed.post("/authentication/validate"))
    missing = routed.get("/v1/models/no-such-model")
    assert missing.status_code == 404
    document.check_answer("/v1/models/{model_name}", missing, "get")
    routed.app.state.drain.start()  # type: ignore[attr-defined]
    not_ready = routed.get("/health/ready")
    assert not_ready.status_code == 503 and not_ready.json()["status"] == "draining"
    document.check_answer("/health/ready", not_ready, "get")


def realtime_session(client: TestClient) -> Iterator[dict[str, Any]]:
    """The server events of a session that meets most of them: updates in both shapes, speech
    turns with logprobs, a clear, a manual commit too short, a bad event."""
    with client.websocket_connect("/v1/realtime?intent=transcription") as ws:
        yield ws.receive_json()
        include = ["item.input_audio_transcription.logprobs"]
        ws.send_json({"type": "session.update", "session": {"type": "transcription", "include": include}})
        yield ws.receive_json()
        ws.send_json({"type": "transcription_session.update", "session": {"input_audio_format": "pcm16"}})
        yield ws.receive_json()
        speech = np.concatenate([silence(0.6), speechlike(3.0), silence(1.0)])
        pcm = pcm_bytes(soxr.resample(speech, 16000, 24000).astype(np.float32))
        for i in range(0, len(pcm), 4800):
            ws.send_json(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i : i + 4800]).decode()}
            )
        while True:
            event = ws.receive_json()
            yield event
            if event["type"].endswith("transcription.completed"):
                break
        ws.send_json({"type": "input_audio_buffer.clear"})
        yield ws.receive_json()
        manual = {"type": "transcription", "audio": {"input": {"turn_detection": None}}}
        ws.send_json({"type": "session.update", "session": manual})
        yield ws.receive_json()
        ws.send_json({"type": "input_audio_buffer.commit", "event_id": "c1"})
        yield ws.receive_json()
        telephone = {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}
        ws.send_json({"type": "session.update", "session": telephone})
        yield ws.receive_json()
        ws.send_json({"type": "transcription_session.update", "session": {"input_audio_format": "g711_alaw"}})
        yield ws.receive_json()


def test_realtime_server_events_are_documented(client: TestClient) -> None:
    document = Document(client)
    events = list(realtime_session(client))
    for event in events:
        document.check(document.schema("RealtimeServerEvent"), event)
    assert {e["type"] for e in events} >= {
        "session.created",
        "session.updated",
        "transcription_session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "input_audio_buffer.cleared",
        "error",
    }


def one_hour(speakers: bool) -> Transcription:
    """720 segments of 14 words (10,080 words), with token logprobs; three speakers taking turns."""
    results = []
    for i in range(720):
        t0 = i * 5.0
        words = tuple(Word(t0 + k * 0.35, t0 + k * 0.35 + 0.3, f" word{k}", 0.81) for k in range(14))
        text = "".join(w.word for w in words)
        logprobs = tuple(TokenLogprob(w.word, -0.1) for w in words)
        segment = Segment(t0, t0 + 4.9, text, tuple(range(14)), -0.2, 1.3, 0.02, 0.0, words, logprobs)
        results.append(ChunkResult(i, Chunk(int(t0 * 16000), int((t0 + 5) * 16000)), (segment,), words, "en"))
    turns = Diarization(tuple(Turn(k * 7.0, k * 7.0 + 7.0, k % 3) for k in range(515)))
    return Transcription(tuple(results), 3600.0, "en-US", words=True, speakers=turns if speakers else None)


def test_a_one_hour_verbose_json_renders_in_a_blink() -> None:
    """Its 10,080 words are plain dicts encoded once: within a few times what ``json.dumps`` of the
    same body takes (1.9-2.3x on a 2-core Zen 3 alone, 2.6x late in the full suite; validating it
    whole through the pydantic model adds ~0.9x), so nothing per word grows with the file. Against
    ``json.dumps`` in the same rounds, not a wall-clock bound: the machine's load cancels out."""
    t = one_hour(speakers=True)
    body = render_body(t, "verbose_json", SubtitleSettings())
    parsed = json.loads(body)
    assert len(parsed["words"]) == 10_080

    def cpu_s(work: Callable[[], object]) -> float:
        # This thread's CPU time: the wall clock also counted other processes' decodes and, for the
        # Python-heavy render alone, waits for the GIL (CI read 5.3x that way once, 170 ms to 32 ms).
        started = time.thread_time()
        work()
        return time.thread_time() - started

    rendering, encoding = [], []
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):  # interleaved, so that both see the same conditions
            rendering.append(cpu_s(lambda: render_body(t, "verbose_json", SubtitleSettings())))
            encoding.append(cpu_s(lambda: json.dumps(parsed)))
    finally:
        gc.enable()
    best_render, best_encode = min(rendering), min(encoding)
    assert best_render < 4 * best_encode, f"{best_render * 1000:.0f} ms against {best_encode * 1000:.0f} ms"


def test_job_bodies_are_the_documented_shapes(make_client: MakeClient, tmp_path: Path) -> None:
    client = make_client(jobs=JobsSettings(data_dir=tmp_path))
    document = Document(client)
    submitted = post(client, "/v1/audio/jobs", speech_wav(), metadata='{"k": "v"}')
    assert submitted.status_code == 202
    document.check_answer("/v1/audio/jobs", submitted)
    job_path = "/v1/audio/jobs/{job_id}"
    job_id = submitted.json()["id"]
    done = client.get(f"/v1/audio/jobs/{job_id}?wait=20")
    assert done.json()["status"] == "completed"
    document.check_answer(job_path, done, "get")
    document.check_answer("/v1/audio/jobs", client.get("/v1/audio/jobs?limit=1"), "get")
    document.check_answer(f"{job_path}/cancel", client.post(f"/v1/audio/jobs/{job_id}/cancel"))
    document.check_answer(job_path, client.delete(f"/v1/audio/jobs/{job_id}"), "delete")
    gone = client.get(f"/v1/audio/jobs/{job_id}")
    assert gone.status_code == 404
    document.check_answer(job_path, gone, "get")
    not_audio = post(client, "/v1/audio/jobs", b"%PDF-1.4 x" * 9)
    assert not_audio.status_code == 415
    document.check_answer("/v1/audio/jobs", not_audio)
