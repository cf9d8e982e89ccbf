"""Deferred imports: a module that loads when something first uses it (if ever)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


class _Deferred(types.ModuleType):
    """Stands in for a module in ``sys.modules`` until one of its attributes is first used."""

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def defer_import(name: str) -> None:
    """Make ``import name`` cheap: the module loads when something first uses it.

    faster-whisper imports PyAV (FFmpeg's libraries: ~16 MiB of RSS and part of a second at start)
    for its own file decoding, which the server never calls: PyAV loads only when an upload needs
    it (app/audio/ffmpeg.py).
    """
    if name not in sys.modules and importlib.util.find_spec(name) is not None:
        sys.modules[name] = _Deferred(name)
