"""A DNS-rebinding name server, as a server process under test sees it: names under ``.rebind.test``
answer from a script (each name's addresses, the n-th lookup getting the n-th and the last one ever
after), as an attacker's DNS with a zero TTL answers; every other name resolves as usual.

``environment`` gives the variables that install it in a child Python process: a ``sitecustomize``
on its ``PYTHONPATH`` replaces ``socket.getaddrinfo`` (what asyncio, anyio and httpx all resolve
through) before anything else is imported; ``resolving`` does it in this process for a block."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.harness import REPO

_VARIABLE = "ASR_TEST_REBIND"
_SUFFIX = ".rebind.test"


def environment(script: dict[str, list[str]], folder: Path) -> dict[str, str]:
    """The environment additions that make a child process resolve ``script``'s names by it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text("from tests.support.rebinding import install\n\ninstall()\n")
    return {_VARIABLE: json.dumps(script), "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}


def install() -> None:
    """Resolve by the script in the environment (a child process's sitecustomize calls this)."""
    socket.getaddrinfo = _resolver(json.loads(os.environ.get(_VARIABLE, "{}")), socket.getaddrinfo)


@contextmanager
def resolving(script: dict[str, list[str]]) -> Iterator[None]:
    """Resolve by ``script`` in this process while the block runs."""
    real = socket.getaddrinfo
    socket.getaddrinfo = _resolver(script, real)
    try:
        yield
    finally:
        socket.getaddrinfo = real


def _resolver(script: dict[str, list[str]], real: Callable[..., Any]) -> Callable[..., Any]:
    lookups: dict[str, int] = {}
    lock = threading.Lock()

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not isinstance(name, str) or not name.lower().endswith(_SUFFIX):
            return real(host, port, *args, **kwargs)
        answers = script.get(name.lower())
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        with lock:
            n = lookups.get(name, 0)
            lookups[name] = n + 1
        return real(answers[min(n, len(answers) - 1)], port, *args, **kwargs)

    return getaddrinfo
