"""The client side of the wire: client events in (validated), and the session config they build
(the server events are in ``app.realtime.events``).

The subset of OpenAI's Realtime API that transcription sessions use, as openai-python's
``types/realtime`` spells it (``session.update`` with a ``type: "transcription"`` session), plus the
older beta ``transcription_session.update`` (``input_audio_format``, ``input_audio_transcription``).
A bad client event raises ``InvalidRequest`` naming the field; the session answers it with an
``error`` event and carries on.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.audio.g711 import G711_RATE
from app.errors import InvalidRequest
from app.transcription.keywords import Keywords, check_keywords

LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"
PCM_RATES = (16000, 24000)
InputFormat = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]  # GA names (G.711: mu-law, A-law)
# The beta API's names: "pcm16" is 24 kHz mono.
BetaFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]
BETA_FORMATS: dict[BetaFormat, tuple[InputFormat, int]] = {
    "pcm16": ("audio/pcm", 24000),
    "g711_ulaw": ("audio/pcmu", G711_RATE),
    "g711_alaw": ("audio/pcma", G711_RATE),
}


class _Lenient(BaseModel):
    """Fields we do not use (noise_reduction, eagerness, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")


class TurnDetection(_Lenient):
    # semantic_vad is served by the same VAD (its eagerness is ignored).
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    prefix_padding_ms: int | None = Field(None, ge=0, le=5000)
    silence_duration_ms: int | None = Field(None, ge=0, le=5000)


class AudioFormat(_Lenient):
    type: InputFormat = "audio/pcm"
    rate: int | None = None  # audio/pcm: 24000 unless given; G.711: 8000 (OpenAI's objects omit it)

    @model_validator(mode="after")
    def _known_rate(self) -> AudioFormat:
        rates = PCM_RATES if self.type == "audio/pcm" else (G711_RATE,)
        if self.rate is None:
            self.rate = rates[-1]
        elif self.rate not in rates:
            raise ValueError(
                f"rate {self.rate} is not supported for {self.type} "
                f"(supported: {' or '.join(map(str, rates))} Hz)"
            )
        return self


class TranscriptionSettings(_Lenient):
    model: str | None = Field(None, max_length=200)
    language: str | None = Field(None, max_length=35)
    prompt: str | None = Field(None, max_length=4000)
    keywords: Keywords | None = None  # words and phrases to bias recognition toward

    @field_validator("keywords")
    @classmethod
    def _keywords_fit(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            check_keywords(value)
        return value


class AudioInput(_Lenient):
    format: AudioFormat | None = None
    transcription: TranscriptionSettings | None = None
    turn_detection: TurnDetection | None = None  # an explicit null: commits are manual


class AudioSettings(_Lenient):
    input: AudioInput | None = None


class TranscriptionSession(_Lenient):
    """``session`` of a GA ``session.update``."""

    type: Literal["transcription"]
    audio: AudioSettings | None = None
    include: list[str] | None = Field(None, max_length=8)


class BetaTranscriptionSession(_Lenient):
    """``session`` of the beta ``transcription_session.update``."""

    input_audio_format: BetaFormat | None = None
    input_audio_transcription: TranscriptionSettings | None = None
    turn_detection: TurnDetection | None = None
    include: list[str] | None = Field(None, max_length=8)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """A session's settings after every update so far."""

    rate: int = 24000
    format: InputFormat = "audio/pcm"
    model: str = "whisper-1"  # as the client named it (resolved by the session)
    language: str | None = None  # as the client gave it
    prompt: str | None = None
    keywords: tuple[str, ...] = ()
    turn_detection: TurnDetection | None = dataclasses.field(default_factory=TurnDetection)
    logprobs: bool = False

    def updated(self, session: TranscriptionSession | BetaTranscriptionSession) -> SessionConfig:
        """This config with the fields the update names (and only those) replaced."""
        changes: dict[str, Any] = {}
        if isinstance(session, TranscriptionSession):
            audio_input = session.audio.input if session.audio else None
            transcription = audio_input.transcription if audio_input else None
            if audio_input and audio_input.format:
                changes["format"], changes["rate"] = audio_input.format.type, audio_input.format.rate
            if audio_input and "turn_detection" in audio_input.model_fields_set:
                changes["turn_detection"] = audio_input.turn_detection
        else:
            transcription = session.input_audio_transcription
            if session.input_audio_format:
                changes["format"], changes["rate"] = BETA_FORMATS[session.input_audio_format]
            if "turn_detection" in session.model_fields_set:
                changes["turn_detection"] = session.turn_detection
        if transcription is not None:
            for name in transcription.model_fields_set & {"model", "language", "prompt"}:
                changes[name] = getattr(transcription, name)
            if "keywords" in transcription.model_fields_set:
                changes["keywords"] = tuple(transcription.keywords or ())
        if session.include is not None:
            unknown = set(session.include) - {LOGPROBS_INCLUDE}
            if unknown:
                raise InvalidRequest(
                    f"include: unsupported value(s) {sorted(unknown)}; supported: {LOGPROBS_INCLUDE}",
                    field="session.include",
                )
            changes["logprobs"] = LOGPROBS_INCLUDE in session.include
        if changes.get("model", "") is None:
            changes.pop("model")
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """One parsed client event: its type, its ``event_id`` (echoed in errors) and its payload."""

    type: str
    event_id: str | None
    session: TranscriptionSession | BetaTranscriptionSession | None = None
    audio: bytes = b""


CLIENT_EVENTS = (
    "session.update",
    "transcription_session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)


class BadClientEvent(InvalidRequest):
    """A malformed client event whose ``event_id`` could be read: its error echoes that id."""

    def __init__(self, cause: InvalidRequest, event_id: str) -> None:
        super().__init__(cause.message, field=cause.field)
        self.event_id = event_id


def parse_client_event(text: str) -> ClientEvent:
    """A client message -> ``ClientEvent``; anything malformed raises ``InvalidRequest``
    (``BadClientEvent`` once the message's ``event_id`` is known)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidRequest("the message is not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise InvalidRequest("a client event is a JSON object with a string 'type'", field="type")
    event_id = data.get("event_id")
    event_id = event_id if isinstance(event_id, str) else None
    try:
        return _client_event(data, data["type"], event_id)
    except InvalidRequest as exc:
        if event_id is None:
            raise
        raise BadClientEvent(exc, event_id) from None


def _client_event(data: dict[str, Any], kind: str, event_id: str | None) -> ClientEvent:
    if kind not in CLIENT_EVENTS:
        raise InvalidRequest(
            f"unsupported event type {kind!r} in a transcription session; "
            f"supported: {', '.join(CLIENT_EVENTS)}",
            field="type",
        )
    if kind.endswith("session.update"):
        model = TranscriptionSession if kind == "session.update" else BetaTranscriptionSession
        try:
            session = model.model_validate(data.get("session"))
        except ValidationError as exc:
            raise InvalidRequest(f"session: {_describe(exc)}", field="session") from None
        return ClientEvent(kind, event_id, session=session)
    if kind == "input_audio_buffer.append":
        audio = data.get("audio")
        try:
            pcm = base64.b64decode(audio, validate=True) if isinstance(audio, str) else None
        except (binascii.Error, ValueError):
            pcm = None
        if pcm is None:  # its length is checked against the session's format
            raise InvalidRequest("audio: expected base64 of the session's audio format", field="audio")
        return ClientEvent(kind, event_id, audio=pcm)
    return ClientEvent(kind, event_id)


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "value"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"
