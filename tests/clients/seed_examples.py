# The example code is kept as the seed wrote it (untyped, preamble order, bare open()):
# mypy: ignore-errors
# ruff: noqa: I001, SIM115
"""The seed's four AI Refinery ASR examples, run as written against a server under test.

Run with the "air-1.14" client venv (see tests/support/client_venvs.py):

    AIREFINERY_ADDRESS=http://127.0.0.1:PORT ACCOUNT=acct API_KEY=key \\
        <venv python> tests/clients/seed_examples.py AUDIO [--only async_batch,sync_stream]

The example bodies below are the seed's (shared/seed/000_*.txt) unchanged, except that the audio
path comes from argv and each result is also recorded into RESULTS; the last stdout line is one
JSON object with those results, and the exit status is non-zero when any example raised.

Why it matters: the seed examples are how existing users call the service, so they must work
verbatim.  Their module preamble calls ``login()``, which validates against the vendor cloud
(not our server); offline that fails fast and leaves the API key empty, so the examples then
send ``Authorization: Bearer `` (empty) to ``{AIREFINERY_ADDRESS}/inference/audio/transcriptions``.
"""

import argparse
import asyncio
import contextlib
import io
import json
import sys
import time
import traceback
from typing import Any

ALL = ("async_batch", "async_stream", "sync_batch", "sync_stream")
RESULTS: dict[str, Any] = {}


def _dump(obj: Any) -> Any:
    """model_dump() for pydantic objects (events, responses), the value itself otherwise."""
    dump = getattr(obj, "model_dump", None)
    return dump() if callable(dump) else obj


class _Tee(io.TextIOBase):
    """Keeps what the examples and the SDK print (e.g. "invalid payload: ...") while echoing it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.buf = io.StringIO()

    def write(self, s: str) -> int:
        self.real.write(s)
        return self.buf.write(s)

    def flush(self) -> None:
        self.real.flush()


_tee = _Tee(sys.stdout)
_t0 = time.monotonic()
with contextlib.redirect_stdout(_tee):
    import air  # imported ahead of the preamble only so its (slow) import is timed apart from login()
IMPORT_SECONDS = time.monotonic() - _t0
_t0 = time.monotonic()
with contextlib.redirect_stdout(_tee):
    # ---- seed preamble, as written ----
    import os
    from air import login
    from air.client import AsyncAIRefinery, AIRefinery
    from dotenv import load_dotenv

    load_dotenv()
    auth = login(account=os.getenv("ACCOUNT"), api_key=os.getenv("API_KEY"))
    base_url = os.getenv("AIREFINERY_ADDRESS", "")
LOGIN_SECONDS = time.monotonic() - _t0


# ---- seed example 1: Asynchronous, batch inference ----
async def async_batch_generate_transcription(file_name):
    client = AsyncAIRefinery(**auth.openai(base_url=base_url))
    audio_file = open(file_name, "rb")
    transcription = await client.audio.transcriptions.create(
        model="Azure/AI-Transcription",
        file=audio_file,
    )
    print(transcription.text)
    RESULTS["async_batch"] = {"text": transcription.text, "response": _dump(transcription)}
    return transcription.text


# ---- seed example 2: Asynchronous, streaming ----
async def async_stream_generate_transcription(file_name):
    client = AsyncAIRefinery(**auth.openai(base_url=base_url))
    audio_file = open(file_name, "rb")
    transcription_stream = await client.audio.transcriptions.create(
        model="Azure/AI-Transcription",
        file=audio_file,
        stream=True,
    )
    print("\n[Streaming Transcription Output]")
    events = RESULTS.setdefault("async_stream", {"events": []})["events"]
    async for event in transcription_stream:
        print(event)
        events.append(_dump(event))


# ---- seed example 3: Synchronous, batch inference ----
def sync_batch_generate_transcription(file_name):
    client = AIRefinery(**auth.openai(base_url=base_url))
    audio_file = open(file_name, "rb")
    transcription = client.audio.transcriptions.create(
        model="Azure/AI-Transcription",
        file=audio_file,
    )
    print(transcription.text)
    RESULTS["sync_batch"] = {"text": transcription.text, "response": _dump(transcription)}
    return transcription.text


# ---- seed example 4: Synchronous, streaming ----
def sync_stream_generate_transcription(file_name):
    client = AIRefinery(**auth.openai(base_url=base_url))
    audio_file = open(file_name, "rb")
    transcription_stream = client.audio.transcriptions.create(
        model="Azure/AI-Transcription",
        file=audio_file,
        stream=True,
    )
    events = RESULTS.setdefault("sync_stream", {"events": []})["events"]
    for event in transcription_stream:
        print(event)
        events.append(_dump(event))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", help="audio file to transcribe (the seed hard-codes audio/sample1.wav)")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    args = parser.parse_args()
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(wanted) - set(ALL))
    if unknown:
        parser.error(f"unknown example(s): {unknown}")
    runners = {
        "async_batch": lambda: asyncio.run(async_batch_generate_transcription(args.audio)),
        "async_stream": lambda: asyncio.run(async_stream_generate_transcription(args.audio)),
        "sync_batch": lambda: sync_batch_generate_transcription(args.audio),
        "sync_stream": lambda: sync_stream_generate_transcription(args.audio),
    }
    failed = False
    for name in wanted:
        start = len(_tee.buf.getvalue())
        t0 = time.monotonic()
        with contextlib.redirect_stdout(_tee):
            try:
                runners[name]()
                ok, error = True, None
            except Exception as exc:  # report every failure in the JSON, keep running the rest
                failed = True
                ok = False
                error = {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "message": str(exc)}
                status = getattr(exc, "status", None) or getattr(
                    getattr(exc, "response", None), "status_code", None
                )
                if status is not None:
                    error["status"] = status
                traceback.print_exc(file=sys.stderr)
        entry = RESULTS.setdefault(name, {})
        entry.update(ok=ok, error=error, seconds=round(time.monotonic() - t0, 3))
        entry["printed"] = _tee.buf.getvalue()[start:].splitlines()
    with contextlib.redirect_stdout(_tee):
        client_kwargs = auth.openai(base_url=base_url)  # what each example passed to the client
    out = {
        "sdk_version": air.__version__,
        "base_url": base_url,
        "import_seconds": round(IMPORT_SECONDS, 3),
        "login": {"seconds": round(LOGIN_SECONDS, 3), "client_kwargs": client_kwargs},
        "results": {name: RESULTS[name] for name in wanted},
    }
    sys.stdout.write("\n" + json.dumps(out, default=str) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
