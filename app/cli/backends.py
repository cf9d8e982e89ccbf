"""Where a file is transcribed: in this process on the configured models (the server's own pieces,
without HTTP), or by a running server over its API. Both give each asked format's body."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import httpx

from app.audio.pcm import SAMPLE_RATE
from app.cli.args import decoding_format
from app.config import Settings
from app.models.selection import Task
from app.transcription.params import Upload, parse_params


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
    """A running server's synchronous endpoint, one request per format (each is decoded there).

    The seam for the jobs API: a server that lists ``POST /v1/audio/jobs`` in its ``/openapi.json``
    can give every format (and progress) from one job; a backend for it goes beside this one and is
    picked in ``app.cli.run.backend``."""

    def __init__(
        self, url: str, api_key: str | None, fields: dict[str, Any], task: str, timeout_s: float
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(
            base_url=url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0)
        )
        self.path = "/v1/audio/translations" if task == "translate" else "/v1/audio/transcriptions"
        self.fields = {"model": "whisper-1", **fields}

    def _form(self, fmt: str) -> dict[str, Any]:
        form: dict[str, Any] = {}
        for key, value in {**self.fields, "response_format": fmt}.items():
            if isinstance(value, list):
                form[f"{key}[]"] = value
            else:
                form[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return form

    async def start(self) -> None:
        try:
            r = await self.client.get("/health")
        except httpx.HTTPError as exc:
            raise FileFailed(f"{self.client.base_url}: {exc or type(exc).__name__}") from None
        if r.status_code != 200:
            raise FileFailed(f"{self.client.base_url}/health: HTTP {r.status_code}: {_message(r)}")

    async def transcribe(self, path: Path, formats: list[str], progress: Progress) -> dict[str, str]:
        progress.started(None)
        bodies: dict[str, str] = {}
        for fmt in formats:
            with path.open("rb") as f:
                try:
                    form, file = self._form(fmt), {"file": (path.name, f)}
                    r = await self.client.post(self.path, data=form, files=file)
                except httpx.HTTPError as exc:
                    raise FileFailed(f"{self.client.base_url}: {exc or type(exc).__name__}") from None
            if r.status_code != 200:
                raise FileFailed(f"HTTP {r.status_code}: {_message(r)}")
            bodies[fmt] = r.text
        return bodies

    async def aclose(self) -> None:
        await self.client.aclose()


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"])
    except (ValueError, KeyError, TypeError):
        return r.text[:200]
