"""Health, model listing and the API-key check the AI Refinery async client calls first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.config import Settings
from app.routes.deps import ApiKeyDep, RegistryDep, ServiceDep, SettingsDep

router = APIRouter()


@router.api_route("/health", methods=["GET", "HEAD"], tags=["system"])
async def health(service: ServiceDep) -> dict[str, Any]:
    return {
        "status": "ok",
        "models_loaded": service.registry.loaded(),
        "active_requests": service.transcriber.active_requests,
    }


@router.post("/authentication/validate", tags=["system"])
async def validate_key(settings: SettingsDep, key: ApiKeyDep) -> dict[str, Any]:
    return {"valid": True, "organization_id": settings.organization_id}


def _model_card(model_id: str, settings: Settings, loaded: list[str]) -> dict[str, Any]:
    spec = settings.models[model_id]
    return {
        "id": model_id,
        "object": "model",
        "created": 0,
        "owned_by": "asr-server",
        "aliases": list(spec.aliases),
        "default": model_id == settings.default_model,
        "loaded": model_id in loaded,
    }


@router.get("/v1/models", tags=["models"])
async def list_models(settings: SettingsDep, registry: RegistryDep, _key: ApiKeyDep) -> dict[str, Any]:
    loaded = registry.loaded()
    return {"object": "list", "data": [_model_card(m, settings, loaded) for m in settings.models]}


@router.get("/v1/models/{model_name:path}", tags=["models"])
async def get_model(
    model_name: str, settings: SettingsDep, registry: RegistryDep, _key: ApiKeyDep
) -> dict[str, Any]:
    return _model_card(registry.resolve(model_name), settings, registry.loaded())
