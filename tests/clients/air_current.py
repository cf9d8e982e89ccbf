"""Drive the server with the current AI Refinery SDK and print what it parsed as one JSON line.

Run with the "air-current" client venv (see tests/support/client_venvs.py); the server comes from
``ASR_TEST_BASE_URL`` (no trailing ``/v1``: the SDK appends ``/v1/audio/transcriptions``) and the
key from ``ASR_TEST_API_KEY``:

    <venv python> tests/clients/air_current.py AUDIO --client both --stream \\
        --chunking-strategy '{"type": "server_vad", "silence_duration_ms": 500}'

The last stdout line is ``{"sdk_version", "base_url", "calls": {"sync"|"async": CALL}}`` where
CALL is ``{"ok", "mode", "seconds", "result" (model_dump of the parsed response), "events"
(model_dump of each stream event), "printed" (what the SDK printed, e.g. "invalid payload: ..."),
"error" ({"stage", "type", "message", "status"?}) }``.  Exit status 1 when any call raised.

Why a subprocess driver: the SDK needs Python >= 3.12 while the server and tests run on 3.11,
and using the real SDK (not a re-implementation) is the only way to prove compatibility.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from a client venv
from tests.clients._common import (
    BASE_URL_ENV,
    Call,
    add_common_arguments,
    common_kwargs,
    dump,
    emit,
    run_calls,
)


def describe_error(exc: BaseException, stage: str) -> dict[str, Any]:
    """Exception class, message and HTTP status (requests' or aiohttp's) for the JSON output."""
    info: dict[str, Any] = {
        "stage": stage,
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
    }
    response = getattr(exc, "response", None)
    status = getattr(exc, "status", None) or getattr(response, "status_code", None)
    if status is not None:
        info["status"] = status
    body = getattr(response, "text", None)
    if isinstance(body, str):
        info["body"] = body[:2000]
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_arguments(parser, model="Azure/AI-Transcription", client="both")
    parser.add_argument("--response-format", default=None, help="json (SDK default), verbose_json, text")
    parser.add_argument("--language", default=None, help="BCP-47, SDK default en-US")
    parser.add_argument(
        "--kwarg", action="append", default=[], metavar="KEY=VALUE", help="extra form field (**kwargs)"
    )
    parser.add_argument(
        "--streaming-response",
        action="store_true",
        help="use audio.transcriptions.with_streaming_response.create and its parse()",
    )
    parser.add_argument(
        "--anonymous-file",
        action="store_true",
        help="upload a nameless BytesIO (the SDK then names it file.wav / file_.wav)",
    )
    return parser.parse_args(argv)


def create_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for transcriptions.create(); only what was asked for, so SDK defaults show."""
    kwargs: dict[str, Any] = {"model": args.model, "stream": args.stream, **common_kwargs(args)}
    if args.response_format is not None:
        kwargs["response_format"] = args.response_format
    if args.language is not None:
        kwargs["language"] = args.language
    for item in args.kwarg:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--kwarg needs KEY=VALUE, got {item!r}")
        kwargs[key] = value
    return kwargs


def open_audio(args: argparse.Namespace) -> Any:
    """The file object to upload (a nameless BytesIO with --anonymous-file)."""
    if args.anonymous_file:
        with open(args.audio, "rb") as fh:
            return io.BytesIO(fh.read())
    return open(args.audio, "rb")


def run_sync(args: argparse.Namespace, call: dict[str, Any]) -> None:
    from air import AIRefinery  # type: ignore[import-not-found,unused-ignore]

    stage = "construct"
    try:
        client = AIRefinery(api_key=args.api_key, base_url=args.base_url)
        stage = "request"
        with open_audio(args) as audio:
            kwargs = create_kwargs(args)
            if args.streaming_response:
                cm = client.audio.transcriptions.with_streaming_response.create(file=audio, **kwargs)
                with cm as resp:
                    call["http_status"] = resp.http_response.status_code
                    call["content_type"] = resp.http_response.headers.get("content-type")
                    stage = "iterate"
                    call["events"] = [dump(e) for e in resp.parse()]
            elif args.stream:
                stream = client.audio.transcriptions.create(file=audio, **kwargs)
                stage = "iterate"
                for event in stream:
                    call["events"].append(dump(event))
            else:
                call["result"] = dump(client.audio.transcriptions.create(file=audio, **kwargs))
        call["ok"] = True
    except Exception as exc:
        call["error"] = describe_error(exc, stage)
        traceback.print_exc(file=sys.stderr)


async def run_async(args: argparse.Namespace, call: dict[str, Any]) -> None:
    from air import AsyncAIRefinery  # type: ignore[import-not-found,unused-ignore]

    stage = "construct"  # the constructor POSTs {base_url}/authentication/validate
    try:
        client = AsyncAIRefinery(api_key=args.api_key, base_url=args.base_url)
        stage = "request"
        with open_audio(args) as audio:
            kwargs = create_kwargs(args)
            if args.streaming_response:
                cm = client.audio.transcriptions.with_streaming_response.create(file=audio, **kwargs)
                async with cm as resp:
                    call["http_status"] = resp.http_response.status
                    call["content_type"] = resp.http_response.headers.get("content-type")
                    stage = "iterate"
                    call["events"] = [dump(e) async for e in resp.parse()]
            elif args.stream:
                stream = await client.audio.transcriptions.create(file=audio, **kwargs)
                stage = "iterate"  # the request is only sent when iteration starts
                async for event in stream:
                    call["events"].append(dump(event))
            else:
                call["result"] = dump(await client.audio.transcriptions.create(file=audio, **kwargs))
        call["ok"] = True
    except Exception as exc:
        call["error"] = describe_error(exc, stage)
        traceback.print_exc(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.base_url:
        raise SystemExit(f"set {BASE_URL_ENV} (or --base-url)")
    with contextlib.redirect_stdout(sys.stderr):  # its import prints a compliance banner
        import air  # type: ignore[import-not-found,unused-ignore]
    return emit(air.__version__, args, run_calls(args, run_sync, run_async, wrap=capture_printed))


def capture_printed(call: Call, go: Callable[[], object]) -> None:
    """The SDK reports events it could not validate only by printing "invalid payload: ..."."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        go()
    call["printed"] = printed.getvalue().splitlines()
    sys.stderr.write(printed.getvalue())


if __name__ == "__main__":
    raise SystemExit(main())
