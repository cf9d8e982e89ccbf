"""What the client drivers share: the server/key settings, arguments, the JSON-able dump of SDK
objects and the loop that runs the sync/async calls and prints the one result line.

The drivers run as scripts (``<venv python> tests/clients/X.py``) in the client venvs; they put
the repository root on ``sys.path`` to import this module (``tests`` imports nothing else).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

BASE_URL_ENV = "ASR_TEST_BASE_URL"
API_KEY_ENV = "ASR_TEST_API_KEY"

Call = dict[str, Any]


def dump(obj: Any) -> Any:
    """JSON-able view of an SDK object: model_dump() for pydantic models, repr() as a last resort."""
    method = getattr(obj, "model_dump", None)
    if callable(method):
        return method()
    if isinstance(obj, str | int | float | bool | type(None) | list | dict):
        return obj
    return repr(obj)


def add_common_arguments(parser: argparse.ArgumentParser, *, model: str, client: str) -> None:
    """The options both drivers take; each adds its SDK's own."""
    parser.add_argument("audio", help="audio file to upload")
    parser.add_argument("--client", choices=("sync", "async", "both"), default=client)
    parser.add_argument("--model", default=model)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--chunking-strategy", default=None, help='"auto" or a JSON object')
    parser.add_argument("--timestamp-granularities", default=None, help='JSON list, e.g. ["word"]')
    parser.add_argument("--extra-body", default=None, help="JSON object merged server-side (@FILE: read it)")
    parser.add_argument("--timeout", type=float, default=None, help="per-request timeout, seconds")
    parser.add_argument("--base-url", default=os.environ.get(BASE_URL_ENV, ""))
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV, ""))


def data_url(path: str) -> str:
    """A file as a base64 data URL (``data:audio/wav;base64,...``), as known speakers' references."""
    kind = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}.get(
        path.rsplit(".", 1)[-1], "audio/wav"
    )
    with open(path, "rb") as f:
        return f"data:{kind};base64,{base64.b64encode(f.read()).decode()}"


def common_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The create() keyword arguments decoded from the shared JSON options (only those given)."""
    kwargs: dict[str, Any] = {}
    if args.chunking_strategy is not None:
        cs = args.chunking_strategy
        kwargs["chunking_strategy"] = cs if cs == "auto" else json.loads(cs)
    if args.timestamp_granularities is not None:
        kwargs["timestamp_granularities"] = json.loads(args.timestamp_granularities)
    if args.extra_body is not None:
        text = args.extra_body
        if text.startswith("@"):  # long bodies (references as data URLs) exceed a command line
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        kwargs["extra_body"] = json.loads(text)
    if args.timeout is not None:
        kwargs["timeout"] = args.timeout
    return kwargs


def run_calls(
    args: argparse.Namespace,
    run_sync: Callable[[argparse.Namespace, Call], None],
    run_async: Callable[[argparse.Namespace, Call], Coroutine[Any, Any, None]],
    *,
    wrap: Callable[[Call, Callable[[], None]], None] = lambda call, go: go(),
) -> dict[str, Call]:
    """One CALL record per client asked for; ``wrap`` lets a driver capture what the SDK prints."""
    clients = ["sync", "async"] if args.client == "both" else [args.client]
    calls: dict[str, Call] = {}
    for which in clients:
        mode = "stream" if args.stream else "batch"
        call: Call = {"ok": False, "mode": mode, "result": None, "events": [], "error": None}
        go = (
            functools.partial(run_sync, args, call)
            if which == "sync"
            else functools.partial(asyncio.run, run_async(args, call))
        )
        t0 = time.monotonic()
        wrap(call, go)
        call["seconds"] = round(time.monotonic() - t0, 3)
        calls[which] = call
    return calls


def emit(sdk_version: str, args: argparse.Namespace, calls: dict[str, Call]) -> int:
    """Print the result line; exit status 1 when any call raised."""
    out = {"sdk_version": sdk_version, "base_url": args.base_url, "calls": calls}
    sys.stdout.write(json.dumps(out, default=repr) + "\n")
    return 0 if all(c["ok"] for c in calls.values()) else 1
