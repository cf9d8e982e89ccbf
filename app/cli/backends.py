"""Where a file is transcribed: in this process on the configured models (the server's own pieces,
without HTTP), or by a running server over its API. Both give each asked format's body."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Protocol

import httpx

from app.audio.pcm import SAMPLE_RATE
from app.cli.args import decoding_format
from app.config import Settings
from app.models.selection import Task
from app.transcription.params import Upload, parse_params

JOBS = "/v1/audio/jobs"
_REQUEST_S = 600.0  # one upload or poll; a whole file is bounded by --timeout
_POLL_S = 1.0


class Progress(Protocol):
    def started(self, audio_s: float | None) -> None:
        """The file's length once known (None: not known before it is done)."""

    def advanced(self, audio_s: float) -> None:
        """Transcribed up to this second of the file."""


class Backend(Protocol):
    async def start(self) -> None:
        """Ready to transcribe (the model loaded, the server answering), or an error saying why."""

    async def transcribe(self, path: Path, formats: list[str], progress: Progress) -> dict[str, str]: ...

    async def aclose(self) -> None: ...


class FileFailed(Exception):
    """A file the server refused or failed, with its message."""


class InProcess:
    """The server's use case in this process: concurrent files share the window runner's batches."""

    def __init__(self, settings: Settings, fields: dict[str, Any], task: str) -> None:
        self.settings = settings
        self.fields = {"model": settings.default_model, **fields}
        self.task: Task = "translate" if task == "translate" else "transcribe"
        # The web stack and the engine load only for in-process runs (not for --help or --server).
        from app.main import make_admission, transcription_service
        from app.server.metrics import Metrics
        from app.transcription.render import render_body

        self.render = render_body
        self.service = transcription_service(settings, Metrics())
        self.admission = make_admission(settings)

    async def start(self) -> None:
        await self.service.registry.get(self.service.registry.resolve(self.fields["model"]))

    async def transcribe(self, path: Path, formats: list[str], progress: Progress) -> dict[str, str]:
        params = parse_params({**self.fields, "response_format": decoding_format(formats)})
        with self.admission.enter() as ticket, path.open("rb") as f:
            job = await self.service.prepare(Upload(params, f, path.name, None), ticket, self.task)
            try:
                progress.started(job.feed.duration_s)
                done = await self.service.transcribe(
                    job, lambda r: progress.advanced(r.chunk.end / SAMPLE_RATE)
                )
            finally:
                await job.feed.close()
        return {fmt: self.render(done, fmt, self.settings.subtitles) for fmt in formats}

    async def aclose(self) -> None:
        self.service.registry.close()
        self.service.diarizer.close()


class OnServer:
    """A running server: by its jobs API where it has one (``POST /v1/audio/jobs`` in its
    ``/openapi.json``), which gives progress and outlives a dropped connection, else its synchronous
    endpoint. One job renders every format where the server keeps ``result_formats`` (its result
    route takes ``response_format``); else one job or request per format (``text`` comes from a
    JSON format's ``text`` when one is asked too), each transcribed there."""

    def __init__(
        self, url: str, api_key: str | None, fields: dict[str, Any], task: str, timeout_s: float
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(
            base_url=url, headers=headers, timeout=httpx.Timeout(_REQUEST_S, connect=10.0)
        )
        self.task = task
        self.path = "/v1/audio/translations" if task == "translate" else "/v1/audio/transcriptions"
        self.fields = {"model": "whisper-1", **fields}
        self.timeout_s = timeout_s
        self.jobs = False
        self.one_job = False  # the server keeps result_formats

    def _form(self, fmt: str) -> dict[str, Any]:
        form: dict[str, Any] = {}
        for key, value in {**self.fields, "response_format": fmt}.items():
            if isinstance(value, list):
                form[f"{key}[]"] = value
            else:
                form[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return form

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise FileFailed(f"{self.client.base_url}: {exc or type(exc).__name__}") from None

    async def start(self) -> None:
        r = await self._call("GET", "/health")
        if r.status_code != 200:
            raise FileFailed(f"{self.client.base_url}/health: HTTP {r.status_code}: {_message(r)}")
        schema = await self._call("GET", "/openapi.json")
        try:
            paths = schema.json().get("paths", {}) if schema.status_code == 200 else {}
            self.jobs = JOBS in paths
            result = paths.get(f"{JOBS}/{{job_id}}/result", {}).get("get", {})
            self.one_job = any(p.get("name") == "response_format" for p in result.get("parameters", []))
        except (ValueError, AttributeError):  # not this server's kind of schema
            self.jobs = self.one_job = False

    async def transcribe(self, path: Path, formats: list[str], progress: Progress) -> dict[str, str]:
        if self.jobs and self.one_job:
            main = decoding_format(formats)
            return await self._by_jobs(path, [[main, *(f for f in formats if f != main)]], progress)
        from_json = next((f for f in formats if f.endswith("json")), None)
        asked = [f for f in formats if f != "text" or from_json is None]
        if self.jobs:
            bodies = await self._by_jobs(path, [[f] for f in asked], progress)
        else:
            progress.started(None)
            bodies = {fmt: await self._by_request(path, fmt) for fmt in asked}
        if from_json is not None and "text" in formats:
            text = str(json.loads(bodies[from_json]).get("text") or "")
            bodies["text"] = text + "\n" if text else ""
        return bodies

    async def _by_request(self, path: Path, fmt: str) -> str:
        with path.open("rb") as f:
            r = await self._call(
                "POST",
                self.path,
                data=self._form(fmt),
                files={"file": (path.name, f)},
                timeout=self.timeout_s,
            )
        if r.status_code != 200:
            raise FileFailed(f"HTTP {r.status_code}: {_message(r)}")
        return r.text

    async def _by_jobs(self, path: Path, groups: list[list[str]], progress: Progress) -> dict[str, str]:
        """A job per group of formats (its response_format, then its result_formats), followed
        until all end (within ``timeout_s``), then their results; the jobs are deleted once read or
        failed. Resubmitting the same file (a re-run after an interruption) finds its jobs again
        through the ``Idempotency-Key``."""
        deadline = time.monotonic() + self.timeout_s
        ids: list[str] = []
        try:
            for group in groups:
                ids.append(await self._submit(path, group, deadline))
            total: float | None = None
            while True:
                jobs = [await self._job(i) for i in ids]
                failed = next((j for j in jobs if j.get("status") in ("failed", "cancelled")), None)
                if failed is not None:
                    error = failed.get("error") or {}
                    raise FileFailed(f"job {failed['status']}: {error.get('message', 'no reason given')}")
                if total is None and all(j["progress"]["total_s"] is not None for j in jobs):
                    total = min(j["progress"]["total_s"] for j in jobs)
                    progress.started(total)
                progress.advanced(min(j["progress"]["done_s"] for j in jobs))
                if all(j["status"] == "completed" for j in jobs):
                    break
                if time.monotonic() > deadline:
                    raise FileFailed(f"not done within --timeout {self.timeout_s:g} s")
                await asyncio.sleep(_POLL_S)
            bodies: dict[str, str] = {}
            for i, group in zip(ids, groups, strict=True):
                for fmt in group:
                    r = await self._call("GET", f"{JOBS}/{i}/result", params={"response_format": fmt})
                    if r.status_code != 200:
                        raise FileFailed(f"HTTP {r.status_code}: {_message(r)}")
                    bodies[fmt] = r.text
            return bodies
        finally:
            for i in ids:
                with contextlib.suppress(FileFailed):
                    await self._call("DELETE", f"{JOBS}/{i}")

    async def _job(self, job_id: str) -> dict[str, Any]:
        r = await self._call("GET", f"{JOBS}/{job_id}")
        if r.status_code != 200:
            raise FileFailed(f"HTTP {r.status_code}: {_message(r)}")
        job: dict[str, Any] = r.json()
        return job

    async def _submit(self, path: Path, formats: list[str], deadline: float) -> str:
        """A job for its first format, keeping the others; a full queue (429) is waited out as its
        Retry-After says."""
        form = {**self._form(formats[0]), "task": self.task}
        if formats[1:]:
            form["result_formats[]"] = formats[1:]
        key = _idempotency_key(path, form)
        while True:
            with path.open("rb") as f:
                r = await self._call(
                    "POST", JOBS, data=form, files={"file": (path.name, f)}, headers={"Idempotency-Key": key}
                )
            if r.status_code in (200, 202):
                return str(r.json()["id"])
            wait_s = float(r.headers.get("Retry-After", "5")) if r.status_code == 429 else None
            if wait_s is None or time.monotonic() + wait_s > deadline:
                raise FileFailed(f"HTTP {r.status_code}: {_message(r)}")
            await asyncio.sleep(wait_s)

    async def aclose(self) -> None:
        await self.client.aclose()


def _idempotency_key(path: Path, form: dict[str, Any]) -> str:
    """The same file (path, size, modification time) with the same fields: the same job."""
    stat = path.stat()
    identity = [str(path.resolve()), stat.st_size, stat.st_mtime_ns, form]
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"])
    except (ValueError, KeyError, TypeError):
        return r.text[:200]
