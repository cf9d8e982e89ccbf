"""Health and readiness probes, metrics, model listing and the API-key check the AI Refinery
async client calls first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.config import EMBEDDED_MODEL, EMBEDDED_MULTILINGUAL, Settings
from app.errors import RETRY_AFTER_S, ErrorBody, error_body
from app.models.registry import ModelRegistry
from app.routes.deps import AdmissionDep, ApiKeyDep, RegistryDep, ServiceDep, SettingsDep, require_api_key
from app.routes.openapi import error_responses
from app.server.metrics import CONTENT_TYPE_LATEST
from app.transcription.languages import WHISPER_LANGUAGES

router = APIRouter()
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class Health(BaseModel):
    status: Literal["ok", "draining"]
    models_loaded: list[str]
    active_requests: int


class Live(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    models_loaded: list[str]


class NotReady(ErrorBody):
    """The error envelope, with why this replica takes no traffic now."""

    status: Literal["draining", "loading", "busy"]


class KeyValidation(BaseModel):
    valid: Literal[True]
    organization_id: str


class ModelCard(BaseModel):
    """A model, or one of its aliases (OpenAI's model ids are aliases of the default model)."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    alias_of: str | None = Field(description="the model an alias names; null for a model")
    diarizes: bool = Field(description="this name turns diarization on (a diarize_aliases name)")
    aliases: list[str]
    default: bool
    loaded: bool
    languages: list[str] | None = Field(description="Whisper codes; null: a folder model not loaded yet")
    multilingual_model: str | None = Field(description="where other languages and translations go")
    translates: bool | None


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


def probe(path: str, **doc: Any) -> Callable[[Endpoint], Endpoint]:
    """GET, and HEAD beside it (Docker and load-balancer checks), as two routes: one route for both
    methods would give the OpenAPI document two operations with one id."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.head(path, include_in_schema=False)(endpoint)
        return router.get(path, tags=["system"], **doc)(endpoint)

    return register


@probe("/health")
async def health(request: Request, service: ServiceDep, admission: AdmissionDep) -> Health:
    """For existing users and Docker's HEALTHCHECK: 200 while the process answers."""
    return Health(
        status="draining" if request.app.state.drain.draining else "ok",
        models_loaded=service.registry.loaded(),
        active_requests=admission.active,
    )


@probe("/health/live")
async def live() -> Live:
    """Liveness: the process answers (a restart would not help a busy or draining server)."""
    return Live(status="ok")


@probe("/health/ready", responses={200: {"model": Ready}, 503: {"model": NotReady}})
async def ready(request: Request, service: ServiceDep, admission: AdmissionDep) -> Response:
    """Readiness: send this replica traffic only when its models are loaded, it is not draining
    and it has room for another request."""
    loaded = service.registry.loaded()
    missing = [m for m in service.registry.startup_models() if m not in loaded]
    reason: Literal["draining", "loading", "busy"]
    if request.app.state.drain.draining:
        reason, message = "draining", "the server is shutting down"
    elif missing:
        reason, message = "loading", f"models not loaded yet: {', '.join(missing)}"
    elif not admission.has_room:
        reason, message = "busy", "no capacity left for another request"
    else:
        return JSONResponse(Ready(status="ready", models_loaded=loaded).model_dump())
    body = NotReady(**error_body(message, "not_ready"), status=reason)
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


@router.get("/metrics", tags=["system"])
async def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus text format; needs an API key only with ``metrics_require_api_key``."""
    if settings.metrics_require_api_key:
        require_api_key(request)
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.post("/authentication/validate", tags=["system"], responses=error_responses(401))
async def validate_key(settings: SettingsDep, key: ApiKeyDep) -> KeyValidation:
    return KeyValidation(valid=True, organization_id=settings.organization_id)


def _languages(model_id: str, settings: Settings, registry: ModelRegistry) -> list[str] | None:
    """The Whisper codes the model itself transcribes (None: a folder model not loaded yet)."""
    engine = registry.loaded_engine(model_id)
    path = settings.models[model_id].path
    if engine is not None:
        english_only = engine.english_only
    elif path in (EMBEDDED_MODEL, EMBEDDED_MULTILINGUAL):
        english_only = path == EMBEDDED_MODEL
    else:
        return None
    return ["en"] if english_only else sorted(WHISPER_LANGUAGES)


def _model_card(name: str, settings: Settings, registry: ModelRegistry) -> ModelCard:
    """The card of a model id or alias ``name``."""
    model_id = registry.resolve(name)
    spec = settings.models[model_id]
    languages = _languages(model_id, settings, registry)
    translates = None if languages is None else len(languages) > 1 or spec.multilingual_model is not None
    alias = name != model_id
    return ModelCard(
        id=name,
        object="model",
        created=0,
        owned_by="asr-server",
        alias_of=model_id if alias else None,
        diarizes=registry.diarizes(name),
        aliases=[] if alias else [*spec.aliases, *spec.diarize_aliases],
        default=model_id == settings.default_model and not alias,
        loaded=model_id in registry.loaded(),
        languages=languages,
        # Where this English-only model sends other languages, detection and translations.
        multilingual_model=spec.multilingual_model,
        translates=translates,
    )


@router.get("/v1/models", tags=["models"], responses=error_responses(401))
async def list_models(settings: SettingsDep, registry: RegistryDep, _key: ApiKeyDep) -> ModelList:
    """Every model, then every alias as a model of its own (as OpenAI lists its model ids)."""
    names = [*settings.models, *(n for n in settings.model_names() if n not in settings.models)]
    return ModelList(object="list", data=[_model_card(n, settings, registry) for n in names])


@router.get("/v1/models/{model_name:path}", tags=["models"], responses=error_responses(401, 404))
async def get_model(
    model_name: str, settings: SettingsDep, registry: RegistryDep, _key: ApiKeyDep
) -> ModelCard:
    return _model_card(model_name, settings, registry)
