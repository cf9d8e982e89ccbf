"""Webhooks: when a job ends, a POST of a small event to its ``callback_url`` (else ``jobs.webhook_url``),
signed per Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64
HMAC-SHA256 of "id.timestamp.body">`` with the ``whsec_`` secret), as openai-python verifies it.

Timeouts, connection errors, 5xx, 408 and 429 are retried with exponential backoff (up to
``jobs.webhook_max_attempts``, with the same ``webhook-id``); other answers are final. Each attempt is
recorded on the job. Redirects are not followed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import anyio.to_thread
import httpx

from app.errors import InvalidRequest
from app.jobs.protocol import WebhookEvent, WebhookEventData
from app.jobs.store import JobRow, JobStore, new_id
from app.jobs.urls import outbound_client, redact
from app.jobs_config import JobsSettings
from app.server.metrics import Metrics

logger = logging.getLogger(__name__)
_RETRIED = {408, 429}
_MAX_DELAY_S = 6 * 3600.0


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def event_of(row: JobRow, event_id: str) -> WebhookEvent:
    data = WebhookEventData(id=row.id, status=row.status, metadata=json.loads(row.metadata))  # type: ignore[arg-type]
    kind = f"transcription.job.{row.status}"
    return WebhookEvent(id=event_id, type=kind, created_at=int(row.finished_at or time.time()), data=data)  # type: ignore[arg-type]


class Webhooks:
    def __init__(self, settings: JobsSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._client = outbound_client(
            "callback_url", settings.allow_private_urls, settings.webhook_timeout_s
        )

    async def close(self) -> None:
        await self._client.aclose()

    def delay_s(self, attempt: int) -> float:
        """The wait after the ``attempt``-th failure: base, x4, x16... at most 6 hours."""
        return float(min(self.settings.webhook_retry_base_s * 4 ** (attempt - 1), _MAX_DELAY_S))

    async def deliver(self, store: JobStore, row: JobRow) -> None:
        """One attempt at the job's webhook, recorded on the job."""
        url = row.callback_url or self.settings.webhook_url
        if url is None:
            return
        event_id = row.event_id or new_id("evt")
        attempt = row.webhook_attempts + 1
        status_code, error, retry = await self._post(url, event_of(row, event_id))
        again = retry and attempt < self.settings.webhook_max_attempts
        outcome = (
            "delivered"
            if status_code is not None and 200 <= status_code < 300
            else "retrying"
            if again
            else "failed"
        )
        delivery: dict[str, Any] = {
            "attempt": attempt,
            "created_at": int(time.time()),
            "url": redact(url),
            "status_code": status_code,
            "outcome": outcome,
            "error": error,
        }
        next_at = time.time() + self.delay_s(attempt) if outcome == "retrying" else None
        self.metrics.webhooks.labels(outcome).inc()
        logger.info("jobs: webhook for %s attempt %d: %s", row.id, attempt, outcome)
        await anyio.to_thread.run_sync(store.record_delivery, row.id, delivery, event_id, next_at)

    async def _post(self, url: str, event: WebhookEvent) -> tuple[int | None, str | None, bool]:
        """(the answer's status, an error, whether to retry)."""
        body = event.model_dump_json().encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(timestamp),
        }
        if self.settings.webhook_secret is not None:
            headers["webhook-signature"] = sign(self.settings.webhook_secret, event.id, timestamp, body)
        try:
            async with self._client.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code  # the body is not read
        except InvalidRequest as exc:  # its address is refused (checked as it connects)
            return None, exc.message, False
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: the receiver did not answer", True
        if 200 <= status < 300:
            return status, None, False
        return status, f"the receiver answered HTTP {status}", status >= 500 or status in _RETRIED
