"""Settings precedence and validation; device/compute selection without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import load_settings
from app.engine.placement import CpuLayout, cpu_layout, select_placement
from tests.support.harness import REPO


def test_precedence_defaults_file_env_args(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 9001\nbeam_size: 3\nvad:\n  silence_duration_ms: 700\n  prefix_padding_ms: 100\n")
    s = load_settings(cfg, environ={})
    assert (s.port, s.beam_size, s.vad.silence_duration_ms, s.vad.prefix_padding_ms) == (9001, 3, 700, 100)
    assert s.vad.aggressiveness == 2  # untouched default
    env = {"ASR_PORT": "9002", "ASR_VAD__SILENCE_DURATION_MS": "900", "ASR_API_KEYS": "a, b"}
    s = load_settings(cfg, environ=env)
    assert (s.port, s.vad.silence_duration_ms, s.vad.prefix_padding_ms) == (9002, 900, 100)
    assert s.api_keys == ("a", "b")
    s = load_settings(cfg, environ=env, port=9003)
    assert s.port == 9003


def test_repo_config_yaml_matches_defaults() -> None:
    """config.yaml documents the defaults: loading it changes nothing."""
    defaults = load_settings(environ={"ASR_CONFIG": str(REPO / "config.yaml")})
    assert load_settings(REPO / "config.yaml", environ={}) == defaults
    assert defaults.model_dump() == type(defaults)().model_dump()


def test_named_config_must_exist() -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(Path("/nonexistent/config.yaml"), environ={})


def test_invalid_values_and_unknown_keys_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        load_settings(environ={"ASR_VAD__SILENCE_DURATION_MS": "9000"})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("prot: 1\n")
    with pytest.raises(ValidationError):
        load_settings(cfg, environ={})


def test_unrelated_asr_variables_are_ignored() -> None:
    assert load_settings(environ={"ASR_TEST_BASE_URL": "x"}).port == 8000


def test_aliases_resolve_to_the_default_model() -> None:
    names = load_settings(environ={}).model_names()
    assert names["Azure/AI-Transcription"] == names["whisper-1"] == names["tiny.en"] == "tiny.en"


def test_placement_auto_without_gpu_is_cpu_int8() -> None:
    p = select_placement("auto", "default", cuda_devices=0, supported={"int8", "float32"})
    assert (p.device, p.compute_type) == ("cpu", "int8")


def test_placement_auto_with_gpu_prefers_float16() -> None:
    p = select_placement("auto", "default", cuda_devices=1, supported={"float16", "int8_float16", "float32"})
    assert (p.device, p.compute_type) == ("cuda", "float16")
    p = select_placement("auto", "default", cuda_devices=1, supported={"int8_float16", "float32"})
    assert p.compute_type == "int8_float16"


def test_placement_errors_are_explicit() -> None:
    with pytest.raises(RuntimeError, match="no CUDA device"):
        select_placement("cuda", "default", cuda_devices=0)
    with pytest.raises(RuntimeError, match="not supported"):
        select_placement("cpu", "float16", cuda_devices=0, supported={"int8", "float32"})


def test_cpu_cores_go_to_parallel_model_calls_before_threads_within_one() -> None:
    assert cpu_layout(2, max_batch_size=8) == CpuLayout(workers=2, threads=1)
    assert cpu_layout(16, max_batch_size=8) == CpuLayout(workers=8, threads=2)
    assert cpu_layout(4, max_batch_size=1) == CpuLayout(workers=1, threads=4)  # no batches to spread
    assert cpu_layout(1, max_batch_size=8) == CpuLayout(workers=1, threads=1)
