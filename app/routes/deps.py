"""Request-scoped dependencies: the app's state and the API-key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.errors import Unauthorized
from app.models.registry import ModelRegistry
from app.server.admission import Admission
from app.transcription.service import TranscriptionService


def get_service(request: Request) -> TranscriptionService:
    service: TranscriptionService = request.app.state.service
    return service


def get_admission(request: Request) -> Admission:
    admission: Admission = request.app.state.admission
    return admission


def get_settings(request: Request) -> Settings:
    return get_service(request).settings


def get_registry(request: Request) -> ModelRegistry:
    return get_service(request).registry


def require_api_key(request: Request) -> str | None:
    """When keys are configured, the request must carry one as ``Authorization: Bearer KEY``."""
    keys = get_settings(request).api_keys
    if not keys:
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    # Headers arrive as latin-1 text: compare bytes, so a non-ASCII key is just a wrong key.
    given = token.strip().encode("utf-8")
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(given, k.encode("utf-8")) for k in keys):
        raise Unauthorized("a valid API key is required (Authorization: Bearer <key>)")
    return token.strip()


AdmissionDep = Annotated[Admission, Depends(get_admission)]
ServiceDep = Annotated[TranscriptionService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
ApiKeyDep = Annotated[str | None, Depends(require_api_key)]
