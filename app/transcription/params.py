"""A transcription request: its fields as both SDK encodings send them, validated, and its audio.

The AI Refinery SDK sends structured fields as JSON strings (``chunking_strategy='{"type": ...}'``,
``include='["confidence"]'``, ``stream='True'``); openai-python sends bracket fields
(``chunking_strategy[type]=server_vad``, ``include[]=logprobs``, ``stream=true``). Both are folded into
one plain mapping, ``extra_body`` is merged over it, and one pydantic model validates the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.audio.g711 import G711_RATE, Encoding
from app.audio.pcm import MAX_SOURCE_RATE, MIN_SOURCE_RATE
from app.diarization.known import MAX_KNOWN_SPEAKERS
from app.errors import InvalidRequest
from app.transcription.form import MAX_JSON_CHARS, parse_json
from app.transcription.keywords import Keywords, check_keywords, keyword_prompt
from app.transcription.languages import to_whisper, to_whisper_list
from app.transcription.references import data_url_audio

ResponseFormat = Literal["json", "text", "verbose_json", "srt", "vtt", "diarized_json"]
RESPONSE_FORMATS: tuple[str, ...] = get_args(ResponseFormat)
MAX_SPEAKERS = 20
_NONE_STRINGS = {"", "none", "null"}
# Whisper reads at most 223 prompt tokens (~900 characters of English); longer is refused, not cut.
MAX_PROMPT_CHARS = 1000
# JSON in form fields: nesting and size past anything a client sends (a parser never recurses deep).
# ``encoding`` also takes the RTP / OpenAI names of G.711.
_ENCODING_ALIASES = {
    **dict.fromkeys(("pcmu", "ulaw", "g711_ulaw"), "mulaw"),
    **dict.fromkeys(("pcma", "g711_alaw"), "alaw"),
}
# A known speaker's reference as a data URL: 10 s of 96 kHz 24-bit stereo WAV (5.8 MB) is 7.7 MB as
# base64. A form part may hold one (``known_speaker_references[]``), or all of them (a JSON list,
# ``extra_body``); the whole request stays within max_upload_mb.
MAX_REFERENCE_CHARS = 8 << 20
MAX_REFERENCES_CHARS = MAX_KNOWN_SPEAKERS * MAX_REFERENCE_CHARS + MAX_JSON_CHARS
MAX_NAME_CHARS = 64


class ServerVad(BaseModel):
    """``chunking_strategy`` of type ``server_vad``; omitted values take the server defaults."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    type: Literal["server_vad"]
    prefix_padding_ms: int | None = Field(None, ge=0, le=5000)
    silence_duration_ms: int | None = Field(None, ge=0, le=5000)
    # Maps to webrtcvad aggressiveness round(3 * threshold): higher means more sure before speech.
    threshold: float | None = Field(None, ge=0.0, le=1.0)


class TranscriptionParams(BaseModel):
    """Every form field of POST /v1/audio/transcriptions except ``file``."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, allow_inf_nan=False)

    model: str = Field(min_length=1, max_length=256)
    chunking_strategy: ServerVad | None = None  # None: "auto", the server's VAD defaults
    language: str | None = Field(None, max_length=40)  # None or "auto": detect (English-only: English)
    # The languages the audio may be in: detection chooses among them (one: as ``language``).
    languages: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=100)
    response_format: ResponseFormat = "json"
    stream: bool = False
    timeout: float | None = Field(None, gt=0)
    include: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=16)
    timestamp_granularities: list[Literal["word", "segment"]] = Field(default_factory=list, max_length=4)
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    hotwords: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    # Words and phrases to bias recognition toward (openai-python sends keywords[]=...).
    keywords: Keywords = Field(default_factory=list)
    # Headerless PCM layout (the upload's content type may also say ``audio/pcm;rate=8000``).
    sample_rate: int | None = Field(None, ge=MIN_SOURCE_RATE, le=MAX_SOURCE_RATE)
    channels: int | None = Field(None, ge=1, le=32)
    encoding: Encoding = "linear16"  # Deepgram's names; G.711 is 8 kHz (sample_rate defaults to it)
    # Speakers: diarize (also implied by diarized_json or any count hint).
    diarize: bool = False
    num_speakers: int | None = Field(None, ge=1, le=MAX_SPEAKERS)
    min_speakers: int | None = Field(None, ge=1, le=MAX_SPEAKERS)
    max_speakers: int | None = Field(None, ge=1, le=MAX_SPEAKERS)
    # Known speakers (OpenAI's fields, which imply diarization): a name for each reference, a data
    # URL of 2-10 s of that person's voice (app/transcription/references.py).
    known_speaker_names: list[Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]] = Field(
        default_factory=list, max_length=MAX_KNOWN_SPEAKERS
    )
    known_speaker_references: list[Annotated[str, Field(max_length=MAX_REFERENCE_CHARS)]] = Field(
        default_factory=list, max_length=MAX_KNOWN_SPEAKERS
    )
    # Each channel transcribed on its own, its speaker the channel (a call recorded one party per channel).
    multichannel: bool = False

    @property
    def wants_speakers(self) -> bool:
        hints = (self.num_speakers, self.min_speakers, self.max_speakers)
        return (
            self.diarize
            or self.response_format == "diarized_json"
            or any(h is not None for h in hints)
            or bool(self.known_speaker_names)
        )

    @field_validator("known_speaker_names", "known_speaker_references", mode="before")
    @classmethod
    def _known_list(cls, value: object) -> object:
        """A JSON list in one field, or one plain value, as well as a list."""
        if isinstance(value, str):
            text = value.strip()
            return parse_json(text, "list", MAX_REFERENCES_CHARS) if text.startswith("[") else [value]
        return value

    @field_validator("known_speaker_names")
    @classmethod
    def _printable_names(cls, names: list[str]) -> list[str]:
        if not all(name.isprintable() for name in names):
            raise ValueError("a name must be printable text (no line breaks or control characters)")
        if len(set(names)) < len(names):
            raise ValueError("each name must be different")
        return names

    @field_validator("known_speaker_references")
    @classmethod
    def _data_urls(cls, urls: list[str], info: ValidationInfo) -> list[str]:
        names = info.data.get("known_speaker_names")
        if names is not None and len(names) != len(urls):
            raise ValueError(
                f"{len(urls)} references for {len(names)} known_speaker_names: give one reference per name"
            )
        for i, url in enumerate(urls):
            try:
                data_url_audio(url)
            except ValueError as exc:
                raise ValueError(f"reference {i} {exc}") from None
        return urls

    @property
    def declares_language(self) -> bool:
        """A language is given (``language``, or one ``languages`` entry): nothing is detected."""
        return bool(to_whisper(self.language)) or len(to_whisper_list(self.languages)) == 1

    @property
    def prompt_words(self) -> str | None:
        """The words decoding is biased toward: ``keywords``, then ``hotwords``."""
        return keyword_prompt(self.keywords, self.hotwords)

    @model_validator(mode="after")
    def _speaker_bounds(self) -> TranscriptionParams:
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers: must not be more than max_speakers")
        return self

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding_alias(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        name = value.strip().lower()
        return _ENCODING_ALIASES.get(name, name)

    @model_validator(mode="after")
    def _g711_rate(self) -> TranscriptionParams:
        if self.encoding != "linear16":
            if self.sample_rate not in (None, G711_RATE):
                raise ValueError(
                    f"sample_rate: {self.encoding} (G.711) audio is {G711_RATE} Hz; "
                    f"{self.sample_rate} Hz is not supported"
                )
            self.sample_rate = G711_RATE
        return self

    @field_validator("chunking_strategy", mode="before")
    @classmethod
    def _chunking_json(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.lower() in {"auto", *_NONE_STRINGS}:
                return None
            if not text.startswith("{"):
                raise ValueError("must be 'auto' or a server_vad object")
            value = parse_json(text, "chunking_strategy")
        if isinstance(value, dict) and value.get("type") == "auto":
            return None
        return value

    @field_validator("keywords")
    @classmethod
    def _keywords_fit(cls, value: list[str]) -> list[str]:
        check_keywords(value)
        return value

    @field_validator("include", "timestamp_granularities", "languages", "keywords", mode="before")
    @classmethod
    def _list_json(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return parse_json(text, "list")
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator(
        "timeout",
        "language",
        "prompt",
        "hotwords",
        "temperature",
        "num_speakers",
        "min_speakers",
        "max_speakers",
        mode="before",
    )
    @classmethod
    def _none_strings(cls, value: object) -> object:
        # The async AI Refinery client sends timeout="None" when unset.
        if isinstance(value, str) and value.strip().lower() in _NONE_STRINGS:
            return None
        return value


def parse_params(fields: dict[str, Any]) -> TranscriptionParams:
    """Merge ``extra_body`` over the top-level fields and validate; errors name the field."""
    fields = dict(fields)
    extra = fields.pop("extra_body", None)
    if isinstance(extra, str):
        extra = None if extra.strip().lower() in _NONE_STRINGS else extra
        if extra is not None:
            try:
                extra = parse_json(extra, "extra_body", MAX_REFERENCES_CHARS)
            except ValueError as exc:
                raise InvalidRequest(f"extra_body: {exc}", field="extra_body") from None
    if extra is not None:
        if not isinstance(extra, dict):
            raise InvalidRequest("extra_body: must be a JSON object", field="extra_body")
        fields.update(extra)
    try:
        return TranscriptionParams.model_validate(fields)
    except RecursionError:  # a structure too deep for the validator, however it came
        raise InvalidRequest("a field is nested too deeply", field=None) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        if not where:  # a check across fields names them in its message
            raise InvalidRequest(_message(error)) from None
        raise InvalidRequest(f"{where}: {_message(error)}", field=where.split(".")[0]) from None


def _message(error: Any) -> str:
    if error["type"] == "missing":
        return "field required"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


@dataclass(frozen=True, slots=True)
class Upload:
    """A request that passed its form: validated parameters and the audio file (open while in use)."""

    params: TranscriptionParams
    file: BinaryIO  # the audio, spooled to a temporary file once over 1 MB (not held in memory)
    filename: str | None
    content_type: str | None
    background: bool = False  # a job's (``app.jobs``): every window of it, detection's too, after live work
