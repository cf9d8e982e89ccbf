"""Model loading and idle unloading, with fake engines from a counting factory and a hand-set clock."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from app.config import ModelSpec, Settings, load_settings
from app.engine import Engine
from app.models.registry import ModelRegistry
from tests.support.fakes import FakeEngine


class ClosingEngine(FakeEngine):
    def __init__(self, model_id: str) -> None:
        super().__init__()
        self.model_id = model_id
        self.closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


class Factory:
    def __init__(self) -> None:
        self.built: list[ClosingEngine] = []

    def __call__(self, model_id: str, spec: ModelSpec) -> Engine:
        self.built.append(ClosingEngine(model_id))
        return self.built[-1]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


MODELS = {
    "tiny.en": ModelSpec(aliases=("whisper-1",)),
    "small": ModelSpec(path="small"),
    "medium": ModelSpec(path="medium"),
    "large": ModelSpec(path="large", preload=True),
}


def registry(idle_s: float, clock: Callable[[], float] = time.monotonic) -> tuple[ModelRegistry, Factory]:
    factory = Factory()
    settings = Settings(models=MODELS, model_idle_unload_s=idle_s)
    return ModelRegistry(settings, factory, clock=clock), factory


def run(test: Callable[[], Awaitable[None]]) -> None:
    anyio.run(test)


def test_several_models_load_once_and_idle_ones_unload() -> None:
    clock = Clock()
    reg, factory = registry(60.0, clock)

    async def scenario() -> None:
        small = await reg.get("small")
        await reg.get("medium")
        assert await reg.get("small") is small and reg.loaded() == ["medium", "small"]
        clock.now += 30
        await reg.get("medium")  # medium used again; small idle for 30 s only
        assert await reg.unload_idle() == []
        clock.now += 31
        assert await reg.unload_idle() == ["small"]
        assert reg.loaded() == ["medium"] and [e.closed for e in factory.built] == [True, False]
        again = await reg.get("small")  # loads afresh on the next use
        assert again is not small and len(factory.built) == 3

    run(scenario)


def test_never_unloaded_while_a_request_holds_it() -> None:
    clock = Clock()
    reg, factory = registry(10.0, clock)

    async def scenario() -> None:
        async with reg.lease("small"):
            clock.now += 3600
            assert await reg.unload_idle() == [] and not factory.built[0].closed
            assert await reg.get("medium")  # a request for another model sweeps too
            assert "small" in reg.loaded()
        assert await reg.unload_idle() == []  # idle counts from the end of its last use
        clock.now += 10
        assert sorted(await reg.unload_idle()) == ["medium", "small"]
        assert all(e.closed for e in factory.built)

    run(scenario)


def test_a_request_unloads_other_idle_models() -> None:
    clock = Clock()
    reg, factory = registry(5.0, clock)

    async def scenario() -> None:
        await reg.get("small")
        clock.now += 6
        await reg.get("medium")
        assert reg.loaded() == ["medium"] and factory.built[0].closed

    run(scenario)


def test_default_preloaded_and_handed_in_models_stay_loaded() -> None:
    clock = Clock()
    factory = Factory()
    settings = Settings(models=MODELS, model_idle_unload_s=1.0)
    reg = ModelRegistry(settings, factory, {"medium": FakeEngine()}, clock=clock)
    assert reg.startup_models() == ["tiny.en", "large"]

    async def scenario() -> None:
        for model_id in ("tiny.en", "large", "small"):
            await reg.get(model_id)
        clock.now += 3600
        assert await reg.unload_idle() == ["small"]
        assert reg.loaded() == ["large", "medium", "tiny.en"]

    run(scenario)


def test_zero_never_unloads() -> None:
    clock = Clock()
    reg, _ = registry(0.0, clock)

    async def scenario() -> None:
        await reg.get("small")
        clock.now += 1e9
        assert await reg.unload_idle() == [] and reg.loaded() == ["small"]

    run(scenario)


def test_idle_models_unload_in_the_background_without_requests() -> None:
    reg, factory = registry(0.05)

    async def scenario() -> None:
        async with reg.unloading_idle_models():
            await reg.get("small")
            for _ in range(250):  # up to 5 s
                if not reg.loaded():
                    break
                await anyio.sleep(0.02)
        assert reg.loaded() == [] and factory.built[0].closed

    run(scenario)


def test_settings_from_yaml_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  tiny.en:\n    preload: true\nmodel_idle_unload_s: 300\n")
    s = load_settings(cfg, environ={})
    assert s.models["tiny.en"].preload and s.model_idle_unload_s == 300
    assert load_settings(cfg, environ={"ASR_MODEL_IDLE_UNLOAD_S": "12.5"}).model_idle_unload_s == 12.5
    with pytest.raises(ValueError, match="model_idle_unload_s"):
        load_settings(cfg, environ={"ASR_MODEL_IDLE_UNLOAD_S": "-1"})
