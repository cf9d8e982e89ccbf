"""Live transcription benchmark: real speech streamed at real time to ``/v1/realtime``.

Run by hand: ``python -m bench.realtime [--sessions 1,4] [--clips 10] [--url http://...]``. Each
session streams short clips of ``../shared/eval`` one after another (rotated per session, 1.5 s of
silence between them) in 100 ms appends at real time, and measures per clip:

- first-delta latency: the first delta of the clip's speech minus the moment its first loud frame was sent;
- completed latency: its last ``completed`` minus the moment its last loud frame was sent, and
  minus the moment ``speech_stopped`` arrived (which waits for the session's ``silence_duration_ms``
  of silence: the server's own share of the latency);
- WER of the completed transcripts, next to the WER of the same clips through the batch endpoint;
- how far the caption the deltas built was from the completed text that replaces it: the share of
  the words previews sent that the final decode does not have (the last delta, the final's own
  words after the sent ones, aside), and the WER of all the deltas against the completed text;
- lag growth: the completed latency of each session's last third of clips minus its first third;
- the server's CPU time per second of audio streamed (when the bench started the server): what the
  load would cost on a quiet machine, where wall-clock latencies on a shared one cannot tell.

Figures are p50 / p95 over all clips of all sessions. Without ``--url`` it starts the server itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import difflib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.audio.decode import decode_audio  # noqa: E402
from app.audio.pcm import PcmFormat  # noqa: E402
from app.realtime.partials import word_key  # noqa: E402
from tests.support.evalset import Clip, clips, wer  # noqa: E402
from tests.support.harness import free_port  # noqa: E402

RATE = 16000
STEP = RATE // 10  # 100 ms appends
GAP_S = 1.5
LOUD_DBFS = -40.0
DELTA = "conversation.item.input_audio_transcription.delta"


@dataclass
class Sent:
    clip: Clip
    start_s: float  # where the clip starts in the session's audio
    speech: tuple[float, float]  # its first and last loud 10 ms frame, in the session's audio
    sent_at: dict[str, float] = field(default_factory=dict)  # wall time the speech start / end went out
    first_delta: float | None = None
    completed: float | None = None
    after_stop: float | None = None  # completed minus the arrival of its speech_stopped
    texts: list[str] = field(default_factory=list)  # completed transcripts
    captions: list[str] = field(default_factory=list)  # each item's deltas, joined
    previewed: list[str] = field(default_factory=list)  # the same without the final's last delta


def loud_span(samples: np.ndarray) -> tuple[float, float]:
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    level = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-10)
    loud = np.flatnonzero(level > LOUD_DBFS)
    return loud[0] * 0.01, (loud[-1] + 1) * 0.01


def load(clip: Clip) -> np.ndarray:
    return decode_audio(
        clip.path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=1e6
    ).to_float()


async def session(url: str, chosen: list[Clip], audio: dict[str, np.ndarray]) -> list[Sent]:
    stream, plan, offset = [], [], 0.0
    for clip in chosen:
        samples = np.concatenate([audio[clip.id], np.zeros(int(GAP_S * RATE), np.float32)])
        start, end = loud_span(audio[clip.id])
        plan.append(Sent(clip, offset, (offset + start, offset + end)))
        stream.append(samples)
        offset += len(samples) / RATE
    pcm = (np.clip(np.concatenate(stream), -1, 1) * 32767).astype("<i2").tobytes()
    owner: dict[str, Sent] = {}
    stopped: dict[str, float] = {}
    deltas: dict[str, list[str]] = {}
    previous = ("", "")  # the last event's type and item

    def clip_at(ms: float) -> Sent:
        return next((s for s in reversed(plan) if s.start_s * 1000 <= ms + 400), plan[0])

    async with connect(
        url.replace("http", "ws", 1) + "/v1/realtime?intent=transcription", max_size=None
    ) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {
                            "input": {
                                "format": {"type": "audio/pcm", "rate": RATE},
                                "transcription": {"language": "en"},
                            }
                        },
                    },
                }
            )
        )
        started = time.monotonic()

        async def send() -> None:
            for k, i in enumerate(range(0, len(pcm), STEP * 2)):
                await ws.send(
                    json.dumps(
                        {
                            "type": "input_audio_buffer.append",
                            "audio": base64.b64encode(pcm[i : i + STEP * 2]).decode(),
                        }
                    )
                )
                now, sent_s = time.monotonic(), (i // 2 + STEP) / RATE
                for s in plan:
                    for key, t in (("start", s.speech[0]), ("end", s.speech[1])):
                        if key not in s.sent_at and sent_s >= t:
                            s.sent_at[key] = now
                await asyncio.sleep(max(0.0, started + (k + 1) * 0.1 - time.monotonic()))

        sender = asyncio.create_task(send())
        pending: set[str] = set()
        while not (sender.done() and not pending):
            try:
                event = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
            except TimeoutError:
                continue
            now, kind = time.monotonic(), event["type"]
            if kind == "input_audio_buffer.speech_started":
                owner[event["item_id"]] = clip_at(event["audio_start_ms"] + 300)
                pending.add(event["item_id"])
            elif kind == "input_audio_buffer.speech_stopped":
                stopped[event["item_id"]] = now
            elif kind == "conversation.item.input_audio_transcription.delta":
                s = owner[event["item_id"]]
                s.first_delta = s.first_delta or now
                deltas.setdefault(event["item_id"], []).append(event["delta"])
            elif kind == "conversation.item.input_audio_transcription.completed":
                s = owner[event["item_id"]]
                s.completed, pending = now, pending - {event["item_id"]}
                s.after_stop = now - stopped.get(event["item_id"], now)
                s.texts.append(event["transcript"])
                said = deltas.pop(event["item_id"], [])
                s.captions.append("".join(said))
                # the final's last delta comes right before its completed event
                s.previewed.append("".join(said[:-1] if previous == (DELTA, event["item_id"]) else said))
            elif kind == "error":
                raise RuntimeError(event["error"]["message"])
            previous = (kind, event.get("item_id", ""))
        await sender
    return plan


def changed_words(sent: str, final: str) -> tuple[int, int]:
    """(words sent, how many of them the final text does not have, aligned in order)."""
    a, b = [word_key(w) for w in sent.split()], [word_key(w) for w in final.split()]
    blocks = difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    return len(a), len(a) - sum(block.size for block in blocks)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) the server process has used so far (0 when it is not ours)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(
    url: str,
    n_sessions: int,
    chosen: list[Clip],
    audio: dict[str, np.ndarray],
    batch: dict[str, str],
    pid: int | None,
) -> str:
    async def all_sessions() -> list[list[Sent]]:
        rotations = [chosen[k % len(chosen) :] + chosen[: k % len(chosen)] for k in range(n_sessions)]
        return await asyncio.gather(*(session(url, r, audio) for r in rotations))

    cpu0 = cpu_s(pid)
    plans = asyncio.run(all_sessions())
    audio_s = n_sessions * sum(len(audio[c.id]) / RATE + GAP_S for c in chosen)
    cpu_per_audio_s = (cpu_s(pid) - cpu0) / audio_s
    sent = [s for plan in plans for s in plan]
    first = [s.first_delta - s.sent_at["start"] for s in sent if s.first_delta]
    done = [s.completed - s.sent_at["end"] for s in sent if s.completed]
    after_stop = [s.after_stop for s in sent if s.after_stop is not None]
    third = max(1, len(plans[0]) // 3)
    growth = [
        statistics.mean(s.completed - s.sent_at["end"] for s in plan[-third:] if s.completed)
        - statistics.mean(s.completed - s.sent_at["end"] for s in plan[:third] if s.completed)
        for plan in plans
    ]
    live_wer = wer([s.clip.text for s in sent], [" ".join(s.texts) for s in sent])
    batch_wer = wer([s.clip.text for s in sent], [batch[s.clip.id] for s in sent])
    completed = [t for s in sent for t in s.texts]
    caption_wer = wer(completed, [c for s in sent for c in s.captions])
    counts = [changed_words(p, t) for s in sent for p, t in zip(s.previewed, s.texts, strict=True)]
    previewed, changed = sum(n for n, _ in counts), sum(c for _, c in counts)
    return (
        f"| {n_sessions} | {len(sent)} | {len(first)} | {pct(first, 0.5):.2f} / {pct(first, 0.95):.2f} "
        f"| {pct(done, 0.5):.2f} / {pct(done, 0.95):.2f} "
        f"| {pct(after_stop, 0.5):.2f} / {pct(after_stop, 0.95):.2f} | {max(growth):+.2f} "
        f"| {live_wer:.2%} | {batch_wer:.2%} | {changed / max(previewed, 1):.1%} of {previewed} "
        f"| {caption_wer:.2%} | {cpu_per_audio_s:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", default="1,4")
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    chosen = [c for c in clips("short") if 3.0 <= c.duration_s <= 12.0][: args.clips]
    audio = {c.id: load(c) for c in chosen}
    server = None
    url = args.url
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        for _ in range(240):
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        batch = {}
        for c in chosen:
            files = {"file": (c.path.name, c.path.read_bytes())}
            r = httpx.post(
                url + "/v1/audio/transcriptions",
                data={"model": "whisper-1", "language": "en"},
                files=files,
                timeout=300,
            )
            batch[c.id] = r.json()["text"]
        print(
            f"{len(chosen)} clips, {sum(c.duration_s for c in chosen):.0f} s of speech per session, real time"
        )
        print(
            "| sessions | clips | with a delta | first delta s p50 / p95 | completed s p50 / p95 "
            "| completed after speech_stopped s p50 / p95 | lag growth s | live WER | batch WER "
            "| previewed words the final changed | deltas WER vs completed | server CPU s per audio s |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for n in (int(x) for x in args.sessions.split(",")):
            print(run(url, n, chosen, audio, batch, server.pid if server else None), flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
