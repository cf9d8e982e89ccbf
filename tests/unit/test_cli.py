"""``asr-server transcribe``'s parts: options, the files a run takes, where outputs go, writing
them whole or not at all, and ``--server`` on the fake engine's app, by jobs or not (the command
itself runs in tests/integration/test_cli.py)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from app.cli.args import decoding_format, parse
from app.cli.backends import OnServer
from app.cli.files import TEMP_PREFIX, find_sources, write_whole
from app.jobs_config import JobsSettings
from tests.support.harness import MakeClient
from tests.unit.test_api import speech_wav


def test_formats_are_response_formats_in_order_without_repeats() -> None:
    opts = parse(["a.wav", "-f", "srt, txt,text,diarized_json"])
    assert opts.formats == ["srt", "text", "diarized_json"]
    assert parse(["a.wav", "-f", "all"]).formats == [
        "text", "srt", "vtt", "json", "verbose_json", "diarized_json",
    ]  # fmt: skip
    with pytest.raises(SystemExit):
        parse(["a.wav", "-f", "docx"])


def test_request_fields_are_only_the_ones_given() -> None:
    opts = parse(["a.wav", "--language", "de", "--speakers", "--num-speakers", "2", "--word-timestamps"])
    assert opts.fields == {
        "language": "de",
        "num_speakers": 2,
        "diarize": True,
        "timestamp_granularities": ["word", "segment"],
    }
    assert parse(["a.wav"]).fields == {}


def test_one_decode_serves_every_format() -> None:
    assert decoding_format(["text", "diarized_json", "srt"]) == "diarized_json"  # speakers and words
    assert decoding_format(["text", "vtt"]) == "vtt"  # word timings for cues
    assert decoding_format(["text", "json"]) == "text"


def test_folders_are_searched_for_media_and_outputs_keep_their_layout(tmp_path: Path) -> None:
    root = tmp_path / "talks"
    (root / "day1").mkdir(parents=True)
    for name in ("day1/a.flac", "day1/b.MP4", "notes.txt", "c.srt", f"{TEMP_PREFIX}x.wav"):
        (root / name).write_bytes(b"")
    beside = {s.path.relative_to(root): s.out_stem for s in find_sources([root], None)}
    assert beside == {Path("day1/a.flac"): root / "day1/a", Path("day1/b.MP4"): root / "day1/b"}
    out = tmp_path / "out"
    under = [s.out_stem for s in find_sources([root, tmp_path / "one.ogg"], out)]
    assert under == [out / "talks/day1/a", out / "talks/day1/b", out / "one"]
    assert next(find_sources([root], None)).outputs(["text", "verbose_json"]) == {
        "text": root / "day1/a.txt",
        "verbose_json": root / "day1/a.verbose.json",
    }


def test_an_output_is_written_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "sub" / "a.srt"
    write_whole(target, "first\n")
    assert target.read_text() == "first\n"

    def interrupted(fd: int) -> None:  # Ctrl-C after the new text went to the temporary file
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_whole(target, "second\n")
    assert target.read_text() == "first\n"  # the old content, not a part of the new
    assert [p.name for p in target.parent.iterdir()] == ["a.srt"]  # no temporary file left


class Bridge(httpx.AsyncBaseTransport):
    """The CLI's async client onto a TestClient's app; ``hide`` answers those paths 404 (a server
    without them)."""

    def __init__(self, client: TestClient, hide: tuple[str, ...] = ()) -> None:
        self.client, self.hide = client, hide
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(f"{request.method} {request.url.path}")
        if request.url.path in self.hide:
            return httpx.Response(404, json={"success": False, "error": "Not Found"})
        body, headers = await request.aread(), dict(request.headers)
        answer = await asyncio.to_thread(
            self.client.request, request.method, str(request.url), headers=headers, content=body
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


class Recorded:
    def __init__(self) -> None:
        self.total: list[float | None] = []
        self.done: list[float] = []

    def started(self, audio_s: float | None) -> None:
        self.total.append(audio_s)

    def advanced(self, audio_s: float) -> None:
        self.done.append(audio_s)


def on_server(bridge: Bridge) -> OnServer:
    backend = OnServer("http://testserver", None, {"language": "en"}, "transcribe", timeout_s=60)
    backend.client = httpx.AsyncClient(base_url="http://testserver", transport=bridge)
    return backend


async def through(backend: OnServer, path: Path, formats: list[str]) -> tuple[dict[str, str], Recorded]:
    progress = Recorded()
    try:
        await backend.start()
        return await backend.transcribe(path, formats, progress), progress
    finally:
        await backend.aclose()


@pytest.mark.parametrize("jobs", [True, False], ids=["jobs-api", "no-jobs-api"])
def test_server_mode_uses_the_jobs_api_where_there_is_one(
    make_client: MakeClient, tmp_path: Path, jobs: bool
) -> None:
    client = make_client(jobs=JobsSettings(data_dir=tmp_path / "data"))
    audio = tmp_path / "a.wav"
    audio.write_bytes(speech_wav((1.0,) * 6))
    bridge = Bridge(client, hide=() if jobs else ("/openapi.json",))
    bodies, progress = asyncio.run(through(on_server(bridge), audio, ["text", "json", "srt"]))
    for fmt in ("text", "json", "srt"):  # each what the synchronous endpoint answers
        form = {"model": "whisper-1", "language": "en", "response_format": fmt}
        sync = client.post(
            "/v1/audio/transcriptions", data=form, files={"file": ("a.wav", audio.read_bytes())}
        )
        assert bodies[fmt] == sync.text, fmt
    posted = [p for p in bridge.paths if p.startswith("POST")]
    if jobs:  # one job keeping every format, followed with progress, deleted once read
        assert posted == ["POST /v1/audio/jobs"]
        assert progress.total == [pytest.approx(sf.info(str(audio)).duration, abs=0.1)]
        assert progress.done[-1] == pytest.approx(progress.total[0])
        assert client.get("/v1/audio/jobs").json()["data"] == []
    else:  # text from the json: no third decode
        assert posted == ["POST /v1/audio/transcriptions"] * 2 and progress.total == [None]
        assert bodies["text"] == json.loads(bodies["json"])["text"] + "\n"
