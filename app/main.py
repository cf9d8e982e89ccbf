"""The app factory, the one block of error handlers, and ``serve``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.config import Settings, load_settings
from app.diarization import DiarizationWorker
from app.engine import Engine
from app.errors import AsrError, ClientGone, ServerBusy, error_body
from app.jobs.worker import JobWorker
from app.models.registry import ModelRegistry, whisper_factory
from app.realtime.capacity import LiveCapacity
from app.routes import jobs, page, realtime, system, transcriptions
from app.routes.openapi import with_wire_schemas
from app.server.access import AccessMiddleware
from app.server.admission import Admission
from app.server.connections import AcceptErrorFilter, Every, connection_cap, guarded_protocol, raise_fd_limit
from app.server.drain import Drain, DrainingServer
from app.server.metrics import Metrics
from app.server.upload_limits import BodyGuard
from app.transcription.service import TranscriptionService
from app.transcription.windows import WindowRunner

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    engines: Mapping[str, Engine] | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """Build the app; ``engines`` (model id -> engine) are already loaded: the default model loaded
    during start-up, or a fake engine in tests. ``metrics`` is the app's own registry (new unless
    the command made it first, to count the default model's load)."""
    settings = settings or load_settings()
    metrics = metrics or Metrics()
    service = transcription_service(settings, metrics, engines)
    registry, runner, diarizer = service.registry, service.runner, service.diarizer
    admission = make_admission(settings)
    drain = Drain(settings.drain_timeout_s)
    worker = JobWorker(settings, service, admission)
    metrics.watch(
        in_progress=lambda: admission.active,
        waiting=lambda: admission.active - runner.decoding,
        http_in_flight=lambda: drain.in_flight,
        decoded_audio_bytes=lambda: admission.held_bytes,
        draining=lambda: drain.draining,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for model_id in registry.startup_models():
            await registry.get(model_id)
        logger.info("ready: default model %s", settings.default_model)
        await worker.start()
        async with registry.unloading_idle_models():
            yield
        await worker.stop()
        registry.close()
        diarizer.close()

    app = FastAPI(title="asr-server", version="0.1.0", lifespan=lifespan)
    app.openapi = with_wire_schemas(app)  # type: ignore[method-assign]
    app.state.service = service
    app.state.admission = admission
    app.state.metrics = metrics
    app.state.drain = drain
    app.state.jobs = worker
    app.include_router(transcriptions.router)
    app.include_router(system.router)
    app.include_router(jobs.router)
    app.state.realtime = LiveCapacity(settings.realtime.max_sessions, settings.realtime.max_partial_decodes)
    app.include_router(realtime.router)
    app.include_router(page.router)
    app.mount("/static", page.static_files, name="static")
    app.add_middleware(
        BodyGuard,
        max_bytes=int(settings.max_upload_mb * (1 << 20)),
        idle_timeout_s=settings.body_idle_timeout_s,
        total_timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(AccessMiddleware, drain=drain, metrics=metrics)  # outermost: sees every answer
    _add_error_handlers(app)
    return app


def transcription_service(
    settings: Settings, metrics: Metrics, engines: Mapping[str, Engine] | None = None
) -> TranscriptionService:
    """The use case and what it runs on (models, window runner, diarization thread), without HTTP:
    the server's, and the ``asr-server transcribe`` command's in-process one."""
    registry = ModelRegistry(settings, whisper_factory(settings, metrics), engines)
    runner = WindowRunner(
        settings.max_concurrent_requests,
        max_lanes=settings.max_batch_size,
        lane_windows=settings.lane_windows,
    )
    return TranscriptionService(settings, registry, runner, metrics, DiarizationWorker())


def make_admission(settings: Settings) -> Admission:
    """The line of requests in progress and the decoded-audio budget they share."""
    return Admission(
        settings.max_concurrent_requests + settings.max_queued_requests,
        int(settings.audio_budget_mb * (1 << 20)),
    )


def _add_error_handlers(app: FastAPI) -> None:
    """Every error leaves as the seed's envelope with a real status code; no tracebacks."""

    busy_log = Every(10.0)  # a burst of refusals is one line, not one per request

    async def asr_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AsrError)
        if isinstance(exc, ClientGone):
            logger.info("%s", exc.message)  # one line, no traceback
        elif isinstance(exc, ServerBusy):
            request.app.state.metrics.refusals.labels(exc.reason).inc()
            if busy_log.due():
                logger.warning("refusing requests: %s", exc.message)
        elif exc.status_code >= 500:
            logger.error("request failed: %s", exc.message)
        body = error_body(exc.message, exc.code, exc.field)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return JSONResponse(
            error_body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers
        )

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal server error", "internal_error"), status_code=500)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        # A query parameter or header out of its declared range (the jobs routes): 400, not 422.
        assert isinstance(exc, RequestValidationError)
        error = exc.errors()[0]
        where = str(error["loc"][-1])
        return JSONResponse(error_body(f"{where}: {error['msg']}", "invalid_request", where), status_code=400)

    app.add_exception_handler(AsrError, asr_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def __getattr__(name: str) -> Any:
    """``uvicorn app.main:app`` builds the app on first access instead of at import time."""
    if name == "app":
        return create_app()
    raise AttributeError(name)


def serve(
    settings: Settings, engines: Mapping[str, Engine] | None = None, metrics: Metrics | None = None
) -> None:
    """Run the server until it is stopped and drained (the ``asr-server`` command: ``app.__main__``,
    which sets up logging: uvicorn's loggers go to the root logger)."""
    cap = connection_cap(settings.max_connections, raise_fd_limit())
    logging.getLogger("asyncio").addFilter(AcceptErrorFilter())
    app = create_app(settings, engines, metrics)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,  # app.server.access logs each request, with its id
        timeout_graceful_shutdown=10,
        http=guarded_protocol(cap, settings.header_timeout_s),
    )
    DrainingServer(config, app.state.drain).run()
