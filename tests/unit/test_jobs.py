"""Transcription jobs on the fake engine: submit checks, the job's life, results, visibility,
idempotency, cancel, delete, listing, the queue bound; webhook signatures and URL checks."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.jobs.database import DB_NAME, connect
from app.jobs.schema import SCHEMA
from app.jobs.store import JobStore, new_id
from app.jobs_config import JobsSettings
from tests.support.audiogen import speechlike
from tests.support.fakes import FakeEngine
from tests.support.harness import MakeClient
from tests.unit.test_api import speech_wav

JOBS = "/v1/audio/jobs"


def submit(client: TestClient, data: dict[str, Any], audio: bytes | None = None, **kw: Any) -> Any:
    files = {"file": ("a.wav", audio if audio is not None else speech_wav(), "audio/wav")}
    return client.post(JOBS, data=data, files=files, **kw)


def wait_done(client: TestClient, job_id: str, **kw: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"{JOBS}/{job_id}?wait=5", **kw).json()
        if job["status"] in {"completed", "failed", "cancelled"}:
            return job
    raise AssertionError(f"job {job_id} did not end")


@pytest.fixture
def jobs_client(make_client: MakeClient, tmp_path: Path) -> TestClient:
    return make_client(jobs=JobsSettings(data_dir=tmp_path / "data"))


def test_job_runs_and_its_result_is_the_synchronous_body(jobs_client: TestClient, tmp_path: Path) -> None:
    for fmt in ("json", "text", "srt", "verbose_json"):
        r = submit(jobs_client, {"model": "whisper-1", "response_format": fmt, "metadata": '{"k": "v"}'})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["id"].startswith("job_") and job["object"] == "audio.transcription.job"
        assert r.headers["location"] == f"{JOBS}/{job['id']}"
        assert job["status"] in {"queued", "running"} and job["metadata"] == {"k": "v"}
        done = wait_done(jobs_client, job["id"])
        assert done["status"] == "completed", done
        assert done["progress"]["done_s"] == done["progress"]["total_s"] == done["duration"] > 0
        result = jobs_client.get(f"{JOBS}/{job['id']}/result")
        sync = jobs_client.post(
            "/v1/audio/transcriptions",
            data={"model": "whisper-1", "response_format": fmt},
            files={"file": ("a.wav", speech_wav(), "audio/wav")},
        )
        assert result.status_code == 200
        assert result.text == sync.text and result.headers["content-type"] == sync.headers["content-type"]
    assert not list((tmp_path / "data" / "audio").iterdir())  # audio deleted once each job ended


def test_one_job_keeps_several_formats(jobs_client: TestClient, fake_engine: FakeEngine) -> None:
    """Each kept format is the body the synchronous endpoint gives for it (subtitles kept beside a
    format without word timings included); a format not kept is refused."""
    kept = {"srt": ["text", "verbose_json", "srt"], "json": ["srt", "vtt"]}
    for main, also in kept.items():
        fields = {"model": "whisper-1", "response_format": main, "result_formats[]": also}
        decoded = len(fake_engine.options)
        job = submit(jobs_client, fields).json()
        assert job["response_format"] == main and job["result_formats"] == [f for f in also if f != main]
        assert wait_done(jobs_client, job["id"])["status"] == "completed"
        assert all(o.word_timestamps for o in fake_engine.options[decoded:])  # the kept subtitles' cues
        result = f"{JOBS}/{job['id']}/result"
        for fmt in (main, *also):
            body = jobs_client.get(result, params={"response_format": fmt})
            sync = jobs_client.post(
                "/v1/audio/transcriptions",
                data={"model": "whisper-1", "response_format": fmt},
                files={"file": ("a.wav", speech_wav(), "audio/wav")},
            )
            assert body.status_code == 200, body.text
            assert body.text == sync.text and body.headers["content-type"] == sync.headers["content-type"]
        assert jobs_client.get(result).text == jobs_client.get(result, params={"response_format": main}).text
    r = jobs_client.get(result, params={"response_format": "diarized_json"})
    assert r.status_code == 400 and r.json()["param"] == "response_format"
    assert "result_formats" in r.json()["error"]
    assert jobs_client.get(result, params={"response_format": "docx"}).status_code == 400
    spoken = {"model": "whisper-1", "result_formats": "vtt, diarized_json,text", "diarize": "true"}
    assert submit(jobs_client, spoken).json()["result_formats"] == ["vtt", "diarized_json", "text"]


def test_submission_checked_before_queueing(jobs_client: TestClient) -> None:
    cases = [
        ({"model": "nope"}, None, 404, "model_not_found"),
        ({"model": "whisper-1", "language": "xx-nope"}, None, 400, "invalid_request"),
        ({"model": "whisper-1", "task": "summarize"}, None, 400, "invalid_request"),
        ({"model": "whisper-1", "stream": "true"}, None, 400, "invalid_request"),
        ({"model": "whisper-1", "metadata": "[1]"}, None, 400, "invalid_request"),
        ({"model": "whisper-1", "metadata": '{"k": "' + "x" * 5000 + '"}'}, None, 400, "invalid_request"),
        ({"model": "whisper-1"}, b"%PDF-1.4 not audio at all" * 10, 415, "unsupported_audio"),
        ({"model": "whisper-1"}, b"", 400, "invalid_request"),
        ({"model": "whisper-1", "callback_url": "ftp://example.com/x"}, None, 400, "invalid_request"),
        ({"model": "whisper-1", "callback_url": "http://127.0.0.1:9/hook"}, None, 400, "invalid_request"),
        ({"model": "whisper-1", "result_formats": "srt,docx"}, None, 400, "invalid_request"),
        ({"model": "whisper-1", "result_formats": "diarized_json"}, None, 400, "invalid_request"),
    ]
    for data, audio, status, code in cases:
        r = submit(jobs_client, data, audio)
        assert r.status_code == status, (data, r.text)
        assert r.json()["code"] == code and r.json()["success"] is False
    r = jobs_client.post(JOBS, data={"model": "whisper-1"})
    assert r.status_code == 400 and "file" in r.json()["error"]
    for query, field in (("limit=0", "limit"), ("status=done", "status"), ("limit=x", "limit")):
        r = jobs_client.get(f"{JOBS}?{query}")
        assert r.status_code == 400 and r.json()["param"] == field and r.json()["code"] == "invalid_request"
    r = submit(jobs_client, {"model": "whisper-1"}, headers={"idempotency-key": "k" * 300})
    assert r.status_code == 400 and r.json()["param"] == "idempotency-key"
    assert jobs_client.get(JOBS).json()["data"] == []


def test_uploads_are_judged_as_the_synchronous_endpoint_judges_them(jobs_client: TestClient) -> None:
    """Headerless bytes included: what /v1/audio/transcriptions refuses is refused before queueing,
    with the same status and code; what it reads is queued."""
    noise = np.random.default_rng(7).integers(0, 256, 64000, dtype=np.uint8).tobytes()
    pcm = (speechlike(2.0) * 20000).astype("<i2").tobytes()
    cases = [
        (noise, "application/octet-stream", {}),  # random bytes: not a recording
        (pcm[:-1], "application/octet-stream", {}),  # no whole number of samples
        (pcm, "audio/pcm;rate=1", {}),  # a rate no PCM has
        (pcm, "audio/pcmu;rate=16000", {}),  # G.711 is 8 kHz
        (pcm, "application/octet-stream", {"channels": "3"}),  # no whole number of 3-channel frames
        (pcm, "application/octet-stream", {}),  # raw 16-bit speech: read
        (pcm, "audio/pcm;rate=16000", {}),
    ]
    for audio, content_type, fields in cases:
        data = {"model": "whisper-1", **fields}
        files = {"file": ("a.raw", audio, content_type)}
        sync = jobs_client.post("/v1/audio/transcriptions", data=data, files=files)
        job = jobs_client.post(JOBS, data=data, files=files)
        if sync.status_code == 200:
            assert job.status_code == 202, (content_type, fields, job.text)
            continue
        assert (job.status_code, job.json()["code"]) == (sync.status_code, sync.json()["code"]), (
            content_type,
            fields,
        )
    assert sum(j["status"] != "failed" for j in jobs_client.get(JOBS).json()["data"]) == 2


def test_jobs_belong_to_their_key(make_client: MakeClient, tmp_path: Path) -> None:
    client = make_client(api_keys=("k1", "k2"), jobs=JobsSettings(data_dir=tmp_path))
    one, two = {"authorization": "Bearer k1"}, {"authorization": "Bearer k2"}
    assert submit(client, {"model": "whisper-1"}).status_code == 401
    job = submit(client, {"model": "whisper-1"}, headers=one).json()
    for path in ("", "/result"):
        r = client.get(f"{JOBS}/{job['id']}{path}", headers=two)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert client.post(f"{JOBS}/{job['id']}/cancel", headers=two).status_code == 404
    assert client.delete(f"{JOBS}/{job['id']}", headers=two).status_code == 404
    assert client.get(JOBS, headers=two).json()["data"] == []
    assert [j["id"] for j in client.get(JOBS, headers=one).json()["data"]] == [job["id"]]
    assert wait_done(client, job["id"], headers=one)["status"] == "completed"


def test_idempotency_key(jobs_client: TestClient) -> None:
    key = {"idempotency-key": "abc"}
    first = submit(jobs_client, {"model": "whisper-1"}, headers=key).json()
    again = submit(jobs_client, {"model": "whisper-1"}, headers=key).json()
    assert again["id"] == first["id"]
    other = submit(jobs_client, {"model": "whisper-1", "response_format": "text"}, headers=key)
    assert other.status_code == 409 and other.json()["code"] == "conflict"
    assert len(jobs_client.get(JOBS).json()["data"]) == 1


def test_cancel_delete_and_409_before_done(make_client: MakeClient, tmp_path: Path) -> None:
    slow = FakeEngine(delay_s=0.5)
    client = make_client(engine=slow, jobs=JobsSettings(data_dir=tmp_path, max_running=1))
    running = submit(client, {"model": "whisper-1"}, speech_wav((1.0,) * 12)).json()
    queued = submit(client, {"model": "whisper-1"}).json()
    deadline = time.monotonic() + 10
    while client.get(f"{JOBS}/{running['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = client.get(f"{JOBS}/{queued['id']}/result")
    assert r.status_code == 409 and "queued" in r.json()["error"]
    assert client.post(f"{JOBS}/{queued['id']}/cancel").json()["status"] == "cancelled"
    calls = slow.calls
    client.post(f"{JOBS}/{running['id']}/cancel")
    assert wait_done(client, running["id"])["status"] == "cancelled"
    assert slow.calls <= calls + 3  # the windows not yet started never ran
    assert client.delete(f"{JOBS}/{running['id']}").json()["deleted"] is True
    assert client.get(f"{JOBS}/{running['id']}").status_code == 404


def test_list_pages_and_queue_bound(make_client: MakeClient, tmp_path: Path) -> None:
    client = make_client(
        engine=FakeEngine(delay_s=4.0), jobs=JobsSettings(data_dir=tmp_path, max_queued=3, max_running=1)
    )
    ids = [submit(client, {"model": "whisper-1"}).json()["id"]]
    deadline = time.monotonic() + 10
    while client.get(f"{JOBS}/{ids[0]}").json()["status"] != "running":  # running: not queued
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for _ in range(3):
        r = submit(client, {"model": "whisper-1"})
        assert r.status_code == 202
        ids.append(r.json()["id"])
    full = submit(client, {"model": "whisper-1"})
    assert full.status_code == 429 and full.headers["retry-after"] and full.json()["code"] == "too_many_jobs"
    page = client.get(f"{JOBS}?limit=3").json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [j["id"] for j in page["data"]] == ids[::-1][:3]
    rest = client.get(f"{JOBS}?limit=3&after={page['last_id']}").json()
    assert [j["id"] for j in rest["data"]] == ids[:1] and rest["has_more"] is False
    queued = client.get(f"{JOBS}?status=queued").json()["data"]
    assert {j["status"] for j in queued} == {"queued"}


def test_jobs_decode_behind_live_requests_and_are_counted(
    jobs_client: TestClient, fake_engine: FakeEngine
) -> None:
    job = submit(jobs_client, {"model": "whisper-1"}).json()
    assert wait_done(jobs_client, job["id"])["status"] == "completed"
    assert fake_engine.options and all(o.background for o in fake_engine.options)
    decoded = len(fake_engine.options)
    assert jobs_client.post(
        "/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"file": ("a.wav", speech_wav())}
    ).is_success
    assert len(fake_engine.options) > decoded and not any(o.background for o in fake_engine.options[decoded:])
    deadline = time.monotonic() + 15
    while 'asr_jobs{status="completed"} 1.0' not in (text := jobs_client.get("/metrics").text):
        assert time.monotonic() < deadline, "the jobs gauge never counted the job"
        time.sleep(0.2)
    assert 'asr_job_duration_seconds_count{status="completed"} 1.0' in text
    assert "asr_jobs_oldest_queued_age_seconds 0.0" in text


def test_a_database_made_before_result_formats_gains_them(tmp_path: Path) -> None:
    """A jobs database from before ``result_formats`` gets its column; its jobs read as before."""
    old = sqlite3.connect(tmp_path / DB_NAME)
    table = SCHEMA[0].replace("    results TEXT,\n", "").replace("DOUBLE PRECISION", "REAL")
    assert table != SCHEMA[0]
    old.execute(table)
    old.execute(
        "INSERT INTO jobs (id, owner, status, created_at, task, model, response_format, params, metadata) "
        "VALUES ('job_old', '', 'completed', 1.0, 'transcribe', 'whisper-1', 'srt', '{}', '{}')"
    )
    old.commit()
    old.close()
    for _ in range(2):  # opened again: nothing more to add
        store = JobStore(connect(None, tmp_path))
        earlier = store.get("job_old")
        assert earlier is not None and earlier.response_format == "srt" and earlier.results is None
        new = dataclasses.replace(earlier, id=new_id("job"), results='{"text": null}')
        assert store.insert(new) == new and store.get(new.id) == new
        store.close()
