"""Drive the server with openai-python and print what it parsed as one JSON line.

Run with the "air-current" client venv (it holds openai too; see tests/support/client_venvs.py).  The
client is ``OpenAI(api_key=$ASR_TEST_API_KEY, base_url=$ASR_TEST_BASE_URL + "/v1")``:

    <venv python> tests/clients/openai_client.py AUDIO --stream --language en \\
        --chunking-strategy '{"type": "server_vad", "silence_duration_ms": 500}'

The last stdout line is ``{"sdk_version", "base_url", "calls": {"sync"|"async": CALL}}`` where
CALL is ``{"ok", "mode", "seconds", "result" (model_dump, or the str for text/srt/vtt), "events"
(model_dump of each stream event received before any error), "error" ({"stage", "type",
"message", "status"?, "body"?})}``.  Exit status 1 when any call raised.  A stream that fails
midway (``data: {"error": {...}}``) shows up as ``events`` so far plus an ``error`` with stage
``iterate`` and type ``openai.APIError``.

``--max-retries`` defaults to 0 (the SDK's own default is 2, which would triple every failing
request in the server log and add back-off delays to error tests); pass 2 to see the SDK's
default behaviour.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from a client venv
from tests.clients._common import (
    BASE_URL_ENV,
    add_common_arguments,
    common_kwargs,
    data_url,
    dump,
    emit,
    run_calls,
)


def describe_error(exc: BaseException, stage: str) -> dict[str, Any]:
    """Exception class, message, status and error body (openai keeps the parsed body) for the JSON."""
    info: dict[str, Any] = {
        "stage": stage,
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
    }
    status = getattr(exc, "status_code", None)
    if status is not None:
        info["status"] = status
    if hasattr(exc, "body"):
        info["body"] = getattr(exc, "body", None)
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_arguments(parser, model="whisper-1", client="sync")
    parser.add_argument("--response-format", default=None, help="json, text, srt, verbose_json, vtt")
    parser.add_argument("--language", default=None, help="ISO-639-1, e.g. en")
    parser.add_argument("--prompt", default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--include", action="append", default=None, help="e.g. logprobs (repeatable)")
    parser.add_argument("--max-retries", type=int, default=0)
    parser.add_argument("--translate", action="store_true", help="call audio.translations.create instead")
    parser.add_argument(
        "--known-speaker",
        action="append",
        default=None,
        help="NAME=AUDIO_PATH, sent as a data URL (repeatable)",
    )
    return parser.parse_args(argv)


def create_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for transcriptions.create() (or translations.create(), which takes fewer);
    only what was asked for."""
    if args.translate:
        names = ("response_format", "prompt", "temperature")
        return {"model": args.model, **{k: getattr(args, k) for k in names if getattr(args, k) is not None}}
    kwargs: dict[str, Any] = {"model": args.model, **common_kwargs(args)}
    if args.stream:
        kwargs["stream"] = True
    if args.response_format is not None:
        kwargs["response_format"] = args.response_format
    for name in ("language", "prompt", "temperature", "include"):
        value = getattr(args, name)
        if value is not None:
            kwargs[name] = value
    if args.known_speaker:
        pairs = [item.split("=", 1) for item in args.known_speaker]
        kwargs["known_speaker_names"] = [name for name, _ in pairs]
        kwargs["known_speaker_references"] = [data_url(path) for _, path in pairs]
    return kwargs


def run_sync(args: argparse.Namespace, call: dict[str, Any]) -> None:
    from openai import OpenAI  # type: ignore[import-not-found,unused-ignore]

    stage = "request"
    try:
        client = OpenAI(api_key=args.api_key, base_url=args.base_url + "/v1", max_retries=args.max_retries)
        with open(args.audio, "rb") as audio:
            api = client.audio.translations if args.translate else client.audio.transcriptions
            result = api.create(file=audio, **create_kwargs(args))
            if args.stream:
                stage = "iterate"
                for event in result:
                    call["events"].append(dump(event))
            else:
                call["result"] = dump(result)
        call["ok"] = True
    except Exception as exc:
        call["error"] = describe_error(exc, stage)
        traceback.print_exc(file=sys.stderr)


async def run_async(args: argparse.Namespace, call: dict[str, Any]) -> None:
    from openai import AsyncOpenAI  # type: ignore[import-not-found,unused-ignore]

    stage = "request"
    try:
        client = AsyncOpenAI(
            api_key=args.api_key, base_url=args.base_url + "/v1", max_retries=args.max_retries
        )
        # A small local file; the SDK needs a named file object, as users pass it.
        with open(args.audio, "rb") as audio:  # noqa: ASYNC230
            api = client.audio.translations if args.translate else client.audio.transcriptions
            result = await api.create(file=audio, **create_kwargs(args))
            if args.stream:
                stage = "iterate"
                async for event in result:
                    call["events"].append(dump(event))
            else:
                call["result"] = dump(result)
        call["ok"] = True
    except Exception as exc:
        call["error"] = describe_error(exc, stage)
        traceback.print_exc(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.base_url:
        raise SystemExit(f"set {BASE_URL_ENV} (or --base-url)")
    import openai  # type: ignore[import-not-found,unused-ignore]  # slow: keep it out of the timings

    return emit(openai.__version__, args, run_calls(args, run_sync, run_async))


if __name__ == "__main__":
    raise SystemExit(main())
