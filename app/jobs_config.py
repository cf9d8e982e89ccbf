"""The ``jobs`` settings group of ``app.config.Settings`` (in a module of its own: app/config.py is
at the module size limit)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class JobsSettings(BaseModel):
    """Transcription jobs (``/v1/audio/jobs``, app/jobs/); config.yaml says what each setting does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The SQLite database and stored audio (made by the first job); with database_url, local scratch.
    data_dir: Path = Path("data")
    # postgresql://user@host:port/db: a fleet's shared queue (audio in the database); None: SQLite.
    database_url: str | None = None
    # PostgreSQL connections a server opens at most (a large upload's transaction holds one).
    database_pool_size: int = Field(4, ge=1, le=100)
    # Jobs this server runs at once; waiting jobs past max_queued: 429.
    max_running: int = Field(2, ge=1, le=64)
    max_queued: int = Field(1000, ge=1)
    # A finished job and its result are deleted this long after it ended (its audio at once).
    retention_hours: float = Field(24.0, gt=0)
    # A running job's claim; renewed while it runs, so a dead server's job runs again after this.
    lease_s: float = Field(60.0, ge=1, le=3600)
    max_wait_s: float = Field(60.0, ge=0, le=3600)  # GET /v1/audio/jobs/{id}?wait=S at most
    max_metadata_bytes: int = Field(4096, ge=0, le=1 << 20)
    # Webhooks: every job's end goes to its callback_url, else here; signed with the whsec_ secret.
    webhook_url: str | None = None
    webhook_secret: str | None = Field(None, pattern=r"^whsec_[A-Za-z0-9+/=]+$")
    webhook_timeout_s: float = Field(10.0, gt=0, le=300)
    webhook_max_attempts: int = Field(10, ge=1, le=50)
    webhook_retry_base_s: float = Field(10.0, gt=0)  # then x4 after each failure, at most 6 h
    # Hosts or CIDRs that url and callback_url may reach although loopback, private or link-local
    # (JSON in ASR_JOBS__ALLOW_PRIVATE_URLS='["127.0.0.1"]').
    allow_private_urls: tuple[str, ...] = ()
    fetch_timeout_s: float = Field(300.0, gt=0)  # a url source's whole fetch
