"""The real server process (uvicorn, connection guards, limits, decoding) on the fake engine.

For tests that need their own process: memory read from /proc, sockets, disconnects. Settings come
from ``ASR_*`` like the real command; ``FAKE_DELAY_S`` slows each window's fake decode.
"""

from __future__ import annotations

import logging
import os

from app.config import load_settings
from app.main import serve
from tests.support.fakes import FakeEngine


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    engine = FakeEngine(delay_s=float(os.environ.get("FAKE_DELAY_S", "0")))
    # Every configured model (the multilingual partner that detects languages too) is the fake.
    serve(settings, dict.fromkeys(settings.models, engine))


if __name__ == "__main__":
    main()
