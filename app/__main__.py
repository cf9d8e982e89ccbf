"""The ``asr-server`` command (also ``python -m app``).

Start-up is ordered: the C allocator is tuned before any thread starts (see ``app.engine.memory``), and
the default model loads on a second thread while this one imports the web stack. Loading runs in
CTranslate2's C++ without the GIL, so start-up takes the longer of the two rather than their sum.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.config import Settings
    from app.engine import Engine
    from app.server.metrics import Metrics

logger = logging.getLogger("app")


def _load_default_model(settings: Settings, metrics: Metrics) -> Engine:
    from app.models.registry import whisper_factory

    model_id = settings.default_model
    if model_id not in settings.models:
        raise ValueError(f"default_model {model_id!r} is not one of the configured models")
    return whisper_factory(settings, metrics)(model_id, settings.models[model_id])


def cli(argv: list[str] | None = None) -> None:
    """``asr-server [--config ...]`` serves; ``asr-server transcribe PATH...`` transcribes files."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["transcribe"]:
        _prepare_process()
        from app.cli.run import main

        raise SystemExit(main(argv[1:]))
    serve_cli(argv)


def _prepare_process() -> None:
    # numpy's BLAS only multiplies mel filters here; its idle worker threads would spin after each
    # call, taking CPU from CTranslate2. Read when numpy loads, so set before anything imports it.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from app.engine.memory import tune_malloc  # imports numpy (through the engine's contract)

    tune_malloc()


def serve_cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="asr-server",
        description="Self-hosted speech-to-text server (asr-server transcribe --help: transcribe files)",
    )
    parser.add_argument("--config", type=Path, help="config file (default: ./config.yaml if present)")
    parser.add_argument("--host", help="bind address (default from config: 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (default from config: 8000)")
    args = parser.parse_args(argv)
    _prepare_process()

    from app.config import load_settings
    from app.server.logs import configure_logging
    from app.server.metrics import Metrics

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = load_settings(args.config, **overrides)
    configure_logging(settings.log_level, settings.log_format)
    metrics = Metrics()  # made first so that the default model's load is counted
    with ThreadPoolExecutor(1, thread_name_prefix="asr-load") as pool:
        loading = pool.submit(_load_default_model, settings, metrics)
        from app.main import serve

        try:
            engine = loading.result()
        except Exception as exc:
            logger.error("cannot load the default model %r: %s", settings.default_model, exc)
            raise SystemExit(1) from exc
    serve(settings, {settings.default_model: engine}, metrics)


if __name__ == "__main__":
    cli()
