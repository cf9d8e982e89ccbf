"""Operations on the fake engine: /metrics, liveness and readiness, the drain gate, request ids
and the per-request log line (the real processes, SIGTERM and Prometheus: tests/system/test_fleet.py)."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.websockets import WebSocketDisconnect

from app.engine.batcher import Batcher
from app.server.drain import Drain
from app.server.logs import JsonFormatter
from tests.support.audiogen import silence, speechlike, wav_bytes
from tests.support.harness import MakeClient, sse_events

URL = "/v1/audio/transcriptions"
AUDIO_S = 1.0 + 0.8 + 1.5
SPEECH = wav_bytes(np.concatenate([speechlike(1.0), silence(0.8), speechlike(1.5)]))


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def transcribe(client: TestClient, **fields: str) -> object:
    return client.post(URL, data={"model": "whisper-1", **fields}, files={"file": ("a.wav", SPEECH)})


def test_metrics_count_requests_audio_and_first_deltas(make_client: MakeClient) -> None:
    client = make_client()
    assert transcribe(client).status_code == 200  # type: ignore[attr-defined]
    events = sse_events(transcribe(client, stream="true").text)  # type: ignore[attr-defined]
    assert events[-1] == "[DONE]"
    assert client.post(URL, data={"model": "nope"}, files={"file": ("a.wav", SPEECH)}).status_code == 404
    m = samples(client)
    route = {"method": "POST", "route": URL}
    assert value(m, "asr_http_requests_total", **route, model="tiny.en", status="200") == 2
    assert value(m, "asr_http_requests_total", **route, model="", status="404") == 1
    assert value(m, "asr_http_request_duration_seconds_count", route=URL) == 3
    assert value(m, "asr_audio_seconds_total", model="tiny.en") == pytest.approx(2 * AUDIO_S, abs=0.01)
    assert value(m, "asr_real_time_factor_count", model="tiny.en") == 2
    assert value(m, "asr_time_to_first_delta_seconds_count", model="tiny.en") == 1
    assert value(m, "asr_requests_in_progress") == 0
    assert value(m, "asr_requests_waiting") == 0
    assert value(m, "asr_draining") == 0
    assert value(m, "process_cpu_seconds_total") > 0  # the process collector
    # A path that matches no route is one label value, not one per path.
    client.get("/no/such/path/123")
    assert value(
        samples(client), "asr_http_requests_total", method="GET", route="unmatched", model="", status="404"
    )


def test_each_app_has_its_own_registry(make_client: MakeClient) -> None:
    one, two = make_client(), make_client()
    assert transcribe(one).status_code == 200  # type: ignore[attr-defined]
    labels = {"method": "POST", "route": URL, "model": "tiny.en", "status": "200"}
    assert value(samples(one), "asr_http_requests_total", **labels) == 1
    assert value(samples(two), "asr_http_requests_total", **labels) == 0


def test_decoded_audio_is_counted_while_held(make_client: MakeClient) -> None:
    client = make_client()
    admission = client.app.state.admission  # type: ignore[attr-defined]
    assert transcribe(client).status_code == 200  # type: ignore[attr-defined]
    assert admission.held_bytes == 0  # the request is over: its samples are freed
    samples_bytes = round(AUDIO_S * 16000) * 2  # 16 kHz mono 16-bit
    holder = []

    class Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            holder.append(admission.held_bytes)

    handler = Hold(logging.DEBUG)
    # The service's debug line, mid-request.
    logging.getLogger("app.transcription.service").addHandler(handler)
    logging.getLogger("app.transcription.service").setLevel(logging.DEBUG)
    try:
        transcribe(client)
    finally:
        logging.getLogger("app.transcription.service").removeHandler(handler)
        logging.getLogger("app.transcription.service").setLevel(logging.NOTSET)
    assert holder == [samples_bytes]


def test_metrics_may_need_the_api_key(make_client: MakeClient) -> None:
    assert make_client(api_keys=("k",)).get("/metrics").status_code == 200
    guarded = make_client(api_keys=("k",), metrics_require_api_key=True)
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers={"Authorization": "Bearer k"}).status_code == 200


def test_probes_answer_get_and_head(client: TestClient) -> None:
    for path in ("/health", "/health/live", "/health/ready"):
        assert client.get(path).status_code == 200
        head = client.head(path)
        assert head.status_code == 200 and head.content == b""
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/health/ready").json() == {"status": "ready", "models_loaded": ["tiny.en"]}


def test_the_api_document_has_one_operation_per_id(client: TestClient) -> None:
    """Generators (openapi-generator, Stainless) reject a document whose operation ids repeat."""
    paths = client.get("/openapi.json").json()["paths"]
    ids = [op["operationId"] for methods in paths.values() for op in methods.values()]
    assert len(ids) == len(set(ids)) and "/health/ready" in paths


def test_not_ready_without_capacity_and_503s_counted_by_reason(make_client: MakeClient) -> None:
    client = make_client(max_concurrent_requests=1, max_queued_requests=0)
    with client.app.state.admission.enter():  # type: ignore[attr-defined]
        ready = client.get("/health/ready")
        busy = transcribe(client)
    assert ready.status_code == 503 and ready.json()["status"] == "busy"
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"  # type: ignore[attr-defined]
    assert busy.json()["code"] == "server_busy"  # type: ignore[attr-defined]
    assert value(samples(client), "asr_refusals_total", reason="capacity") == 1
    assert client.get("/health/ready").status_code == 200


def test_draining_refuses_new_work_but_answers_probes(client: TestClient) -> None:
    client.app.state.drain.start()  # type: ignore[attr-defined]
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    assert ready.json()["success"] is False
    assert client.get("/health/live").status_code == 200
    assert client.get("/health").json()["status"] == "draining"
    refused = transcribe(client)
    assert refused.status_code == 503  # type: ignore[attr-defined]
    assert refused.headers["retry-after"] == "1" and refused.headers["connection"] == "close"  # type: ignore[attr-defined]
    assert refused.json()["code"] == "draining" and refused.json()["success"] is False  # type: ignore[attr-defined]
    assert client.get("/v1/models").status_code == 503
    m = samples(client)
    assert value(m, "asr_refusals_total", reason="draining") == 2
    assert value(m, "asr_draining") == 1


def test_draining_closes_new_websockets_with_try_again_later(client: TestClient) -> None:
    client.app.state.drain.start()  # type: ignore[attr-defined]
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/v1/realtime"):
        pass
    assert closed.value.code == 1013


def test_drain_finishes_when_nothing_is_in_flight_or_time_is_up() -> None:
    drain = Drain(timeout_s=0.0)
    assert not drain.finished()  # not draining
    drain.in_flight = 1
    drain.start()
    assert drain.finished()  # out of time
    patient = Drain(timeout_s=60)
    patient.in_flight = 1
    patient.start()
    assert not patient.finished()
    patient.in_flight = 0
    assert patient.finished()


def test_request_id_is_taken_or_made_and_echoed(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.server.access")
    given = transcribe_with_id(client, "req-42")
    assert given == "req-42"
    made = transcribe_with_id(client, None)
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert transcribe_with_id(client, "bad id\twith spaces") != "bad id\twith spaces"
    lines = [r for r in caplog.records if r.name == "app.server.access"]
    assert len(lines) == 3  # one line per request
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["request_id"] == "req-42" and fields["status"] == 200 and fields["model"] == "tiny.en"
    assert fields["audio_s"] == 3.3 and fields["rtf"] == pytest.approx(fields["duration_s"] / 3.3, abs=0.001)
    assert lines[0].getMessage().startswith("request_id=req-42 method=POST path=/v1/audio/transcriptions")
    as_json = json.loads(JsonFormatter().format(lines[0]))
    assert (
        as_json["request_id"] == "req-42"
        and as_json["logger"] == "app.server.access"
        and as_json["audio_s"] == 3.3
    )


def transcribe_with_id(client: TestClient, rid: str | None) -> str:
    headers = {"X-Request-ID": rid} if rid else {}
    r = client.post(URL, data={"model": "whisper-1"}, files={"file": ("a.wav", SPEECH)}, headers=headers)
    assert r.status_code == 200
    return r.headers["x-request-id"]


def test_batcher_reports_each_batch_size() -> None:
    sizes: list[int] = []
    batcher: Batcher[int, int] = Batcher(
        lambda items: [i * 2 for i in items], on_batch=sizes.append, max_size=4
    )
    try:
        assert [f.result(timeout=5) for f in [batcher.submit(i) for i in range(6)]] == [0, 2, 4, 6, 8, 10]
    finally:
        batcher.close()
    assert sum(sizes) == 6 and all(1 <= s <= 4 for s in sizes)
