"""The app factory, the one block of error handlers, and ``serve``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.config import Settings, load_settings
from app.engine import Engine
from app.errors import AsrError, error_body
from app.pipeline import Transcriber
from app.realtime.session import LiveCapacity
from app.registry import ModelRegistry, whisper_factory
from app.routes import page, realtime, system, transcriptions
from app.service import TranscriptionService
from app.upload import BodySizeLimit

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, engines: Mapping[str, Engine] | None = None) -> FastAPI:
    """Build the app; ``engines`` (model id -> engine) are already loaded: the default model loaded
    during start-up, or a fake engine in tests."""
    settings = settings or load_settings()
    registry = ModelRegistry(settings, whisper_factory(settings), engines)
    service = TranscriptionService(
        settings,
        registry,
        Transcriber(
            settings.max_concurrent_requests,
            settings.max_queued_requests,
            max_lanes=settings.max_batch_size,
            lane_windows=settings.lane_windows,
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for model_id in registry.startup_models():
            await registry.get(model_id)
        logger.info("ready: default model %s", settings.default_model)
        async with registry.unloading_idle_models():
            yield
        registry.close()

    app = FastAPI(title="asr-server", version="0.1.0", lifespan=lifespan)
    app.state.service = service
    app.include_router(transcriptions.router)
    app.include_router(system.router)
    app.state.realtime = LiveCapacity(settings.realtime.max_sessions, settings.realtime.max_partial_decodes)
    app.include_router(realtime.router)
    app.include_router(page.router)
    app.mount("/static", page.static_files, name="static")
    app.add_middleware(BodySizeLimit, max_bytes=int(settings.max_upload_mb * (1 << 20)))
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error leaves as the seed's envelope with a real status code; no tracebacks."""

    async def asr_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AsrError)
        if exc.status_code >= 500:
            logger.error("request failed: %s", exc.message)
        return JSONResponse(error_body(exc.message, exc.code, exc.field), status_code=exc.status_code)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return JSONResponse(
            error_body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers
        )

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal server error", "internal_error"), status_code=500)

    app.add_exception_handler(AsrError, asr_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def __getattr__(name: str) -> Any:
    """``uvicorn app.main:app`` builds the app on first access instead of at import time."""
    if name == "app":
        return create_app()
    raise AttributeError(name)


def serve(settings: Settings, engines: Mapping[str, Engine] | None = None) -> None:
    """Run the server until it is stopped (the ``asr-server`` command: ``app.__main__``)."""
    uvicorn.run(
        create_app(settings, engines),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
