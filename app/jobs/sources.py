"""A job's ``url`` source, fetched by the server that runs the job: http(s) only, every hop checked
and connected to the address checked (``app.jobs.urls``); redirects (``MAX_REDIRECTS``), size
(``max_upload_mb``) and time (``jobs.fetch_timeout_s``) bounded."""

from __future__ import annotations

import asyncio
from urllib.parse import urljoin

import httpx

from app.config import Settings
from app.errors import AsrError, InvalidRequest
from app.jobs.files import AudioFiles
from app.jobs.urls import outbound_client, redact

MAX_REDIRECTS = 5


class SourceUnavailable(AsrError):
    """The job's url could not be fetched (the job fails with this code)."""

    status_code = 422
    code = "url_fetch_failed"


async def fetch_audio(url: str, files: AudioFiles, job_id: str, settings: Settings) -> str | None:
    """Fetch ``url`` into the job's audio file; its content type."""
    try:
        async with asyncio.timeout(settings.jobs.fetch_timeout_s):
            return await _fetch(url, files, job_id, settings)
    except TimeoutError:
        raise SourceUnavailable(
            f"fetching {redact(url)} took longer than {settings.jobs.fetch_timeout_s:g} s"
        ) from None
    except httpx.HTTPError as exc:
        raise SourceUnavailable(f"fetching {redact(url)} failed: {type(exc).__name__}") from None
    except InvalidRequest as exc:  # a hop to a refused address
        raise SourceUnavailable(exc.message) from None


async def _fetch(url: str, files: AudioFiles, job_id: str, settings: Settings) -> str | None:
    max_bytes = int(settings.max_upload_mb * (1 << 20))
    jobs = settings.jobs
    async with outbound_client("url", jobs.allow_private_urls, jobs.fetch_timeout_s) as client:
        for _ in range(MAX_REDIRECTS + 1):
            async with client.stream("GET", url) as response:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise SourceUnavailable(f"fetching {redact(url)} answered HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise SourceUnavailable(f"{redact(url)} is larger than {settings.max_upload_mb:g} MB")
                size = 0
                with files.writing(job_id) as out:
                    async for block in response.aiter_bytes():
                        size += len(block)
                        if size > max_bytes:
                            raise SourceUnavailable(
                                f"{redact(url)} is larger than {settings.max_upload_mb:g} MB"
                            )
                        out.write(block)
                if not size:
                    raise SourceUnavailable(f"{redact(url)} is empty")
                content_type: str | None = response.headers.get("content-type")
                return content_type
    raise SourceUnavailable(f"fetching {redact(url)} was redirected more than {MAX_REDIRECTS} times")
