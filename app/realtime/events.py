"""The server events of a realtime transcription session, typed, as openai-python's ``types/realtime``
spells them (``session`` in the GA shape, or the beta one after ``transcription_session.update``).

Every field of an event is always sent (``null`` where it has no value); each event gets a fresh
``event_id``. ``/openapi.json`` lists them under ``RealtimeServerEvent``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, RootModel

from app.errors import AsrError
from app.realtime.protocol import (
    BETA_FORMATS,
    LOGPROBS_INCLUDE,
    BetaFormat,
    SessionConfig,
    TurnDetection,
    new_id,
)
from app.transcription.protocol import Logprob, Usage


class ServerEvent(BaseModel):
    """What every server event starts with."""

    type: str
    event_id: str = Field(default_factory=lambda: new_id("event"))


class SessionTranscription(BaseModel):
    model: str = Field(description="as the client named it")
    language: str | None
    prompt: str


class SessionAudioFormat(BaseModel):
    type: Literal["audio/pcm"]
    rate: int = Field(description="samples per second of the PCM16 the client sends")


class SessionG711Format(BaseModel):
    """G.711 at 8 kHz: mu-law (``audio/pcmu``) or A-law (``audio/pcma``)."""

    type: Literal["audio/pcmu", "audio/pcma"]


class SessionAudioInput(BaseModel):
    format: SessionAudioFormat | SessionG711Format
    transcription: SessionTranscription
    turn_detection: TurnDetection | None = Field(description="null: the client commits the buffer")
    noise_reduction: None


class SessionAudio(BaseModel):
    input: SessionAudioInput


class TranscriptionSessionObject(BaseModel):
    """The session of ``session.created`` / ``session.updated``."""

    type: Literal["transcription"]
    id: str
    object: Literal["realtime.transcription_session"]
    audio: SessionAudio
    include: list[str]


class BetaTranscriptionSessionObject(BaseModel):
    """The session of the beta ``transcription_session.updated``."""

    id: str
    object: Literal["realtime.transcription_session"]
    input_audio_format: BetaFormat
    input_audio_transcription: SessionTranscription
    turn_detection: TurnDetection | None
    include: list[str]


class SessionCreated(ServerEvent):
    type: Literal["session.created"] = "session.created"
    session: TranscriptionSessionObject


class SessionUpdated(ServerEvent):
    type: Literal["session.updated"] = "session.updated"
    session: TranscriptionSessionObject


class TranscriptionSessionUpdated(ServerEvent):
    type: Literal["transcription_session.updated"] = "transcription_session.updated"
    session: BetaTranscriptionSessionObject


class BufferCleared(ServerEvent):
    type: Literal["input_audio_buffer.cleared"] = "input_audio_buffer.cleared"


class BufferSpeechStarted(ServerEvent):
    type: Literal["input_audio_buffer.speech_started"] = "input_audio_buffer.speech_started"
    audio_start_ms: int
    item_id: str


class BufferSpeechStopped(ServerEvent):
    type: Literal["input_audio_buffer.speech_stopped"] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int
    item_id: str


class BufferCommitted(ServerEvent):
    type: Literal["input_audio_buffer.committed"] = "input_audio_buffer.committed"
    item_id: str
    previous_item_id: str | None


class TranscriptionDelta(ServerEvent):
    """Text appended to an utterance's transcript (previews, then the final decode's rest)."""

    type: Literal["conversation.item.input_audio_transcription.delta"] = (
        "conversation.item.input_audio_transcription.delta"
    )
    item_id: str
    content_index: int
    delta: str
    logprobs: list[Logprob] | None


class TranscriptionCompleted(ServerEvent):
    """An utterance's final transcript."""

    type: Literal["conversation.item.input_audio_transcription.completed"] = (
        "conversation.item.input_audio_transcription.completed"
    )
    item_id: str
    content_index: int
    transcript: str
    logprobs: list[Logprob] | None = Field(description=f"with include=[{LOGPROBS_INCLUDE!r}]")
    usage: Usage


class TranscriptionFailure(BaseModel):
    type: Literal["transcription_error"]
    code: str
    message: str
    param: None


class TranscriptionFailed(ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.failed"] = (
        "conversation.item.input_audio_transcription.failed"
    )
    item_id: str
    content_index: int
    error: TranscriptionFailure


class RealtimeError(BaseModel):
    """openai-python's ``RealtimeError``; ``event_id`` is the client event's that failed."""

    type: Literal["server_error", "invalid_request_error"]
    code: str
    message: str
    param: str | None
    event_id: str | None


class ErrorEvent(ServerEvent):
    """A client event failed (the session goes on), or the session ends (a close follows)."""

    type: Literal["error"] = "error"
    error: RealtimeError


class RealtimeServerEvent(RootModel[ServerEvent]):
    """One server event of ``/v1/realtime?intent=transcription`` (a WebSocket text message)."""

    root: Annotated[
        SessionCreated
        | SessionUpdated
        | TranscriptionSessionUpdated
        | BufferCleared
        | BufferSpeechStarted
        | BufferSpeechStopped
        | BufferCommitted
        | TranscriptionDelta
        | TranscriptionCompleted
        | TranscriptionFailed
        | ErrorEvent,
        Field(discriminator="type"),
    ]


def error_event(
    message: str, code: str, *, param: str | None = None, event_id: str | None = None
) -> ErrorEvent:
    """The ``error`` server event (openai-python's ``RealtimeError``)."""
    kind: Literal["server_error", "invalid_request_error"] = (
        "server_error" if code == "internal_error" else "invalid_request_error"
    )
    return ErrorEvent(
        error=RealtimeError(type=kind, code=code, message=message, param=param, event_id=event_id)
    )


def error_for(exc: AsrError, event_id: str | None) -> ErrorEvent:
    """The ``error`` event answering a client event that failed with ``exc``."""
    return error_event(exc.message, exc.code, param=exc.field, event_id=event_id)


def _transcription(config: SessionConfig) -> SessionTranscription:
    return SessionTranscription(model=config.model, language=config.language, prompt=config.prompt or "")


def session_object(session_id: str, config: SessionConfig) -> TranscriptionSessionObject:
    """The session of ``session.created`` / ``session.updated``."""
    audio_input = SessionAudioInput(
        format=SessionAudioFormat(type="audio/pcm", rate=config.rate)
        if config.format == "audio/pcm"
        else SessionG711Format(type=config.format),
        transcription=_transcription(config),
        turn_detection=config.turn_detection,
        noise_reduction=None,
    )
    return TranscriptionSessionObject(
        type="transcription",
        id=session_id,
        object="realtime.transcription_session",
        audio=SessionAudio(input=audio_input),
        include=[LOGPROBS_INCLUDE] if config.logprobs else [],
    )


def beta_session_object(session_id: str, config: SessionConfig) -> BetaTranscriptionSessionObject:
    """The session of ``transcription_session.updated``."""
    return BetaTranscriptionSessionObject(
        id=session_id,
        object="realtime.transcription_session",
        input_audio_format=next(name for name, (kind, _) in BETA_FORMATS.items() if kind == config.format),
        input_audio_transcription=_transcription(config),
        turn_detection=config.turn_detection,
        include=[LOGPROBS_INCLUDE] if config.logprobs else [],
    )
