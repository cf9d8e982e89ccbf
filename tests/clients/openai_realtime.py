"""Stream a WAV file (or headerless G.711) to the server with openai-python's realtime client; print
what it parsed.

Run with the "air-current" client venv (it holds openai and websockets; see tests/support/client_venvs.py):

    <venv python> tests/clients/openai_realtime.py SPEECH.wav --speed 1 [--manual] [--logprobs]
    <venv python> tests/clients/openai_realtime.py CALL.ulaw --format audio/pcmu [--beta]

The client is ``AsyncOpenAI(api_key=$ASR_TEST_API_KEY, base_url=$ASR_TEST_BASE_URL + "/v1",
websocket_base_url=ws://.../v1)`` and ``client.realtime.connect(extra_query={"intent":
"transcription"})``. The WAV (16-bit mono, 16 or 24 kHz) is sent in 100 ms appends, ``--speed``
times real time (0: as fast as possible). With ``--format audio/pcmu`` / ``audio/pcma`` the file is
headerless 8 kHz G.711 (mu-law / A-law). ``--beta`` uses the beta client
(``client.beta.realtime.connect`` and ``transcription_session.update``, ``input_audio_format``
``pcm16`` / ``g711_ulaw`` / ``g711_alaw``). With ``--manual`` turn detection is off and the buffer is
committed at the end. The last stdout line is ``{"sdk_version", "events": [{"t", "class",
"event"}], "error"}``: ``t`` is seconds since the first append, ``class`` the SDK type it parsed
into. It stops once every committed item is completed (or failed), or after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
import traceback
import wave
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from a client venv
from tests.clients._common import API_KEY_ENV, BASE_URL_ENV, dump

G711 = {"audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}  # GA name -> beta name
DONE = (
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("audio", help="16-bit mono WAV at 16 or 24 kHz, or headerless 8 kHz G.711")
    parser.add_argument("--format", choices=["audio/pcm", *G711], default="audio/pcm")
    parser.add_argument("--beta", action="store_true", help="the beta session shape and client")
    parser.add_argument("--model", default="whisper-1")
    parser.add_argument("--language", default="en")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--manual", action="store_true", help="turn_detection null; commit at the end")
    parser.add_argument("--logprobs", action="store_true")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--base-url", default=os.environ.get(BASE_URL_ENV, ""))
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV, ""))
    return parser.parse_args()


def load(args: argparse.Namespace) -> tuple[int, int, bytes]:
    """The audio's rate, bytes per sample, and its samples."""
    if args.format in G711:
        return 8000, 1, Path(args.audio).read_bytes()
    with wave.open(args.audio, "rb") as wav:
        return wav.getframerate(), 2, wav.readframes(wav.getnframes())


async def run(args: argparse.Namespace, out: dict[str, Any]) -> None:
    from openai import AsyncOpenAI  # type: ignore[import-not-found,unused-ignore]

    rate, width, pcm = load(args)
    ws_url = args.base_url.replace("http://", "ws://", 1) + "/v1"
    client = AsyncOpenAI(api_key=args.api_key, base_url=args.base_url + "/v1", websocket_base_url=ws_url)
    events: list[dict[str, Any]] = out["events"]
    transcription = {"model": args.model, "language": args.language}
    turns = (
        None if args.manual else {"type": "server_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300}
    )
    include = ["item.input_audio_transcription.logprobs"] if args.logprobs else None
    connecting = (
        client.beta.realtime.connect(model=args.model, extra_query={"intent": "transcription"})
        if args.beta
        else client.realtime.connect(extra_query={"intent": "transcription"})
    )
    async with connecting as conn:
        session: dict[str, Any]
        if args.beta:
            session = {
                "input_audio_format": G711.get(args.format, "pcm16"),
                "input_audio_transcription": transcription,
                "turn_detection": turns,
            }
        else:
            fmt = {"type": args.format} if args.format in G711 else {"type": "audio/pcm", "rate": rate}
            session = {
                "type": "transcription",
                "audio": {"input": {"format": fmt, "transcription": transcription, "turn_detection": turns}},
            }
        if include:
            session["include"] = include
        await (conn.transcription_session if args.beta else conn.session).update(session=session)
        started = time.monotonic()
        sent_all = asyncio.Event()

        async def send() -> None:
            step = rate // 10 * width  # 100 ms of samples
            for k, i in enumerate(range(0, len(pcm), step)):
                await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + step]).decode())
                if args.speed > 0:
                    await asyncio.sleep(max(0.0, started + (k + 1) * 0.1 / args.speed - time.monotonic()))
            if args.manual:
                await conn.input_audio_buffer.commit()
            sent_all.set()

        sender = asyncio.create_task(send())
        committed: set[str] = set()
        finished: set[str] = set()
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            if sent_all.is_set() and committed and committed <= finished:
                break
            try:
                event = await asyncio.wait_for(conn.recv(), 0.5)
            except TimeoutError:
                continue
            t = round(time.monotonic() - started, 3)
            events.append({"t": t, "class": type(event).__name__, "event": dump(event)})
            if event.type == "input_audio_buffer.committed":
                committed.add(event.item_id)
            elif event.type in DONE:
                finished.add(event.item_id)
        else:
            raise TimeoutError(f"not every committed item was completed within {args.timeout} s")
        await sender


def main() -> int:
    args = parse_args()
    if not args.base_url:
        raise SystemExit(f"set {BASE_URL_ENV} (or --base-url)")
    import openai  # type: ignore[import-not-found,unused-ignore]

    out: dict[str, Any] = {"sdk_version": openai.__version__, "events": [], "error": None}
    try:
        asyncio.run(run(args, out))
    except BaseException as exc:  # reported in the JSON line; the test shows it
        out["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    sys.stdout.write(json.dumps(out, default=repr) + "\n")
    return 0 if out["error"] is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
