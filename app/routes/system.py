"""Health, model listing and the API-key check the AI Refinery async client calls first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.config import EMBEDDED_MODEL, EMBEDDED_MULTILINGUAL, Settings
from app.languages import WHISPER_LANGUAGES
from app.registry import ModelRegistry
from app.routes.deps import ApiKeyDep, RegistryDep, ServiceDep, SettingsDep

router = APIRouter()


@router.get("/health", tags=["system"])
async def health(service: ServiceDep) -> dict[str, Any]:
    return {
        "status": "ok",
        "models_loaded": service.registry.loaded(),
        "active_requests": service.transcriber.active_requests,
    }


@router.post("/authentication/validate", tags=["system"])
async def validate_key(settings: SettingsDep, key: ApiKeyDep) -> dict[str, Any]:
    return {"valid": True, "organization_id": settings.organization_id}


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


def _model_card(model_id: str, settings: Settings, registry: ModelRegistry) -> dict[str, Any]:
    spec = settings.models[model_id]
    languages = _languages(model_id, settings, registry)
    translates = None if languages is None else len(languages) > 1 or spec.multilingual_model is not None
    return {
        "id": model_id,
        "object": "model",
        "created": 0,
        "owned_by": "asr-server",
        "aliases": list(spec.aliases),
        "default": model_id == settings.default_model,
        "loaded": model_id in registry.loaded(),
        "languages": languages,
        # Where this English-only model sends other languages, detection and translations.
        "multilingual_model": spec.multilingual_model,
        "translates": translates,
    }


@router.get("/v1/models", tags=["models"])
async def list_models(settings: SettingsDep, registry: RegistryDep, _key: ApiKeyDep) -> dict[str, Any]:
    return {"object": "list", "data": [_model_card(m, settings, registry) for m in settings.models]}


@router.get("/v1/models/{model_name:path}", tags=["models"])
async def get_model(
    model_name: str, settings: SettingsDep, registry: RegistryDep, _key: ApiKeyDep
) -> dict[str, Any]:
    return _model_card(registry.resolve(model_name), settings, registry)
