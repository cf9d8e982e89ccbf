"""The jobs wire: a job object, a list of them, a webhook event (pydantic, as /openapi.json shows)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
EventType = Literal["transcription.job.completed", "transcription.job.failed", "transcription.job.cancelled"]


class JobProgress(BaseModel):
    done_s: float = Field(description="seconds of audio transcribed so far")
    total_s: float | None = Field(description="the audio's length, once decoded")


class JobError(BaseModel):
    code: str = Field(description="the error envelope's code, as the synchronous endpoint gives it")
    message: str


class WebhookDelivery(BaseModel):
    attempt: int
    created_at: int = Field(description="when the attempt was made (Unix seconds)")
    url: str
    status_code: int | None = Field(description="the receiver's answer; null when none came")
    outcome: Literal["delivered", "retrying", "failed"]
    error: str | None = None


class TranscriptionJob(BaseModel):
    """A transcription job, as every jobs route answers it."""

    id: str = Field(description="job_...")
    object: Literal["audio.transcription.job"] = "audio.transcription.job"
    status: JobStatus
    task: Literal["transcribe", "translate"]
    model: str
    response_format: str
    result_formats: list[str] = Field(
        default_factory=list,
        description="formats kept besides response_format: GET .../result?response_format=F",
    )
    created_at: int
    started_at: int | None = None
    finished_at: int | None = None
    expires_at: int | None = Field(None, description="when the finished job and its result are deleted")
    progress: JobProgress
    duration: float | None = Field(None, description="the audio's length in seconds, once decoded")
    error: JobError | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    filename: str | None = None
    url: str | None = Field(None, description="the audio's source URL, credentials removed")
    callback_url: str | None = None
    deliveries: list[WebhookDelivery] = Field(default_factory=list)


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TranscriptionJob]
    first_id: str | None
    last_id: str | None
    has_more: bool


class JobDeleted(BaseModel):
    id: str
    object: Literal["audio.transcription.job.deleted"] = "audio.transcription.job.deleted"
    deleted: Literal[True] = True


class WebhookEventData(BaseModel):
    id: str
    status: JobStatus
    metadata: dict[str, str]


class WebhookEvent(BaseModel):
    """The body POSTed to a job's callback_url when it ends."""

    id: str = Field(description="evt_...; the webhook-id header, the same on every attempt")
    object: Literal["event"] = "event"
    type: EventType
    created_at: int
    data: WebhookEventData
