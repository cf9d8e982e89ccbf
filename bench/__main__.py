"""Benchmark: the server end to end against the bare faster-whisper library, same model and audio.

Run by hand (``make bench`` or ``python -m bench [--concurrency 1,2,4,8] [--skip-long-file]``); not part
of the tests. Prints one table: throughput (audio seconds per wall second) with ratios to the
library's sequential ``transcribe``, WER next to every speed figure, streaming latency, concurrency,
cold start and RSS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from app.audio import PcmFormat, decode_audio  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.engine import Placement, select_placement  # noqa: E402
from app.registry import embedded_model_path  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.evalset import clips, wer  # noqa: E402

URL = "/v1/audio/transcriptions"


@dataclass
class Item:
    name: str
    wav: bytes
    samples: np.ndarray
    reference: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / 16000


def load_items(with_long_file: bool) -> list[Item]:
    items = []
    for clip in clips("long"):
        audio = decode_audio(clip.path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=1e6)
        items.append(Item(clip.id, _wav(audio.samples), audio.samples, clip.text))
    if with_long_file:  # >= 10 minutes: the long files twice, with a second of silence between
        gap = np.zeros(16000, np.float32)
        parts = [p for it in items * 2 for p in (it.samples, gap)]
        samples = np.concatenate(parts)
        text = " ".join(it.reference for it in items * 2)
        items.append(Item(f"long-{len(samples) / 16000 / 60:.0f}min", _wav(samples), samples, text))
    return items


def short_item() -> Item:
    """A short clip: the cold-start probe (a first transcription, not a long one)."""
    clip = clips("short")[0]
    audio = decode_audio(clip.path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=1e6)
    return Item(clip.id, _wav(audio.samples), audio.samples, clip.text)


def _wav(samples: np.ndarray) -> bytes:
    with tempfile.SpooledTemporaryFile() as f:
        sf.write(f, samples, 16000, format="WAV", subtype="PCM_16")
        f.seek(0)
        return f.read()


def library_model(placement: Placement) -> Any:
    """The bare library's model, on the device and compute type the server resolves its settings to."""
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(embedded_model_path()), device=placement.device, compute_type=placement.compute_type
    )


def bare(items: list[Item], beam_size: int, batched: bool, placement: Placement) -> tuple[float, float]:
    """(audio s per wall s, WER) of the bare library on the items."""
    from faster_whisper import BatchedInferencePipeline

    model = library_model(placement)
    runner: Any = BatchedInferencePipeline(model) if batched else model
    kwargs: dict[str, Any] = {"batch_size": 8} if batched else {}
    hyps, wall_s = [], 0.0
    for it in items:
        start = time.monotonic()
        segments, _ = runner.transcribe(it.samples, beam_size=beam_size, language="en", **kwargs)
        hyps.append("".join(s.text for s in segments))
        wall_s += time.monotonic() - start
    return sum(it.duration_s for it in items) / wall_s, wer([it.reference for it in items], hyps)


def library_first_chunk_s(item: Item, beam_size: int, placement: Placement) -> float:
    """Seconds the bare library needs for the file's first VAD chunk alone (best of 3)."""
    from app.vad import ChunkingOptions, chunk_frames, detect_speech

    opts = ChunkingOptions(**load_settings().vad.model_dump())
    chunk = chunk_frames(detect_speech(item.samples, opts.aggressiveness), len(item.samples), opts)[0]
    model = library_model(placement)
    times = []
    for _ in range(3):
        start = time.monotonic()
        segments, _ = model.transcribe(
            item.samples[chunk.start : chunk.end], beam_size=beam_size, language="en"
        )
        list(segments)
        times.append(time.monotonic() - start)
    return min(times)


class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ASR_LOG_LEVEL": "warning"}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.main", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO,
            env=env,
        )
        # One kept-alive connection for /health probes: a fresh client per probe would time its own
        # set-up (an SSL context, a TCP connect), not the server.
        self._health = httpx.Client(base_url=self.base, timeout=30)

    def health_s(self) -> float:
        """Seconds one GET /health takes."""
        start = time.monotonic()
        self._health.get("/health")
        return time.monotonic() - start

    def post(self, item: Item, **fields: str) -> httpx.Response:
        return httpx.post(
            self.base + URL,
            data={"model": "whisper-1", **fields},
            files={"file": ("a.wav", item.wav, "audio/wav")},
            timeout=3600,
        )

    def wait_ready(self, probe: Item) -> float:
        """Seconds from process start to the first successful transcription."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if self.post(probe).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def rss_mib(self) -> tuple[float, float]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024

    def stream(self, item: Item) -> tuple[float, list[float]]:
        """(time to first delta, gaps between deltas)."""
        start = time.monotonic()
        times = []
        with httpx.stream(
            "POST",
            self.base + URL,
            data={"model": "whisper-1", "stream": "true"},
            files={"file": ("a.wav", item.wav, "audio/wav")},
            timeout=3600,
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data:") and "transcript.text.delta" in line:
                    times.append(time.monotonic() - start)
        return times[0], [b - a for a, b in itertools.pairwise(times)]

    def close(self) -> None:
        self._health.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--skip-long-file", action="store_true", help="skip the >= 10 min file")
    args = parser.parse_args()
    items = load_items(not args.skip_long_file)
    total_s = sum(it.duration_s for it in items)
    refs = [it.reference for it in items]
    rows: list[tuple[str, str, str]] = []

    server = Server()  # cold start first, while nothing else is cached
    try:
        cold_s = server.wait_ready(short_item())
        rows.append(("cold start -> first transcription", f"{cold_s:.1f} s", ""))
        idle = []
        for _ in range(25):  # this machine's own latency floor, to read the loaded figures against
            idle.append(server.health_s())
            time.sleep(0.2)
        rows.append(
            (
                "/health p50 / p95, server idle",
                f"{statistics.median(idle) * 1000:.0f} / "
                f"{statistics.quantiles(idle, n=20)[18] * 1000:.0f} ms",
                "",
            )
        )
        start = time.monotonic()
        hyps = [server.post(it).json()["text"] for it in items]
        speed = total_s / (time.monotonic() - start)
        server_wer = wer(refs, hyps)
        first_s, gaps = server.stream(items[0])
        concurrency = [
            concurrency_row(server, n, items[0]) for n in [int(x) for x in args.concurrency.split(",")]
        ]
        peak, steady = server.rss_mib()
    finally:
        server.close()

    settings = load_settings()  # config.yaml and ASR_* overrides, as the server reads them
    placement = select_placement(settings.device, settings.compute_type)
    seq_speed, seq_wer = bare(items, args.beam_size, batched=False, placement=placement)
    bat_speed, bat_wer = bare(items, args.beam_size, batched=True, placement=placement)
    chunk_s = library_first_chunk_s(items[0], args.beam_size, placement)
    rows += [
        ("library transcribe (sequential)", f"{seq_speed:.1f}x RT  WER {seq_wer:.2%}", "1.00"),
        (
            "library BatchedInferencePipeline (8)",
            f"{bat_speed:.1f}x RT  WER {bat_wer:.2%}",
            f"{bat_speed / seq_speed:.2f}",
        ),
        (
            "server batch (1 client)",
            f"{speed:.1f}x RT  WER {server_wer:.2%}",
            f"{speed / seq_speed:.2f} (vs batched {speed / bat_speed:.2f}; "
            f"WER {100 * (server_wer - seq_wer):+.2f} pt)",
        ),
        (
            f"stream first delta ({items[0].name})",
            f"{first_s:.2f} s",
            f"{first_s / chunk_s:.2f} x library first chunk ({chunk_s:.2f} s)",
        ),
    ]
    if gaps:
        rows.append(
            ("stream gap between deltas p50/max", f"{statistics.median(gaps):.2f} / {max(gaps):.2f} s", "")
        )
    one_client = concurrency[0][1]
    rows += [(name, value, f"{agg / one_client:.2f} x 1 client") for name, agg, value in concurrency]
    rows.append(("RSS peak / steady", f"{peak:.0f} / {steady:.0f} MiB", ""))

    width = max(len(r[0]) for r in rows)
    print(
        f"\nmodel tiny.en {placement.compute_type} on {placement.device}, beam {args.beam_size}, "
        f"{total_s:.0f} s of audio, {os.cpu_count()} cores"
    )
    print(f"{'measure'.ljust(width)}  {'value'.ljust(44)}  ratio")
    for name, value, ratio in rows:
        print(f"{name.ljust(width)}  {value.ljust(44)}  {ratio}")
    print(json.dumps({"rows": rows}), file=sys.stderr)


def concurrency_row(server: Server, n: int, item: Item) -> tuple[str, float, str]:
    """(label, aggregate audio s per wall s, value) for n clients posting the same file at once."""
    health: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            health.append(server.health_s())
            stop.wait(0.2)

    poller = threading.Thread(target=poll)
    poller.start()
    latencies: list[float] = []

    def one(it: Item) -> str:
        t = time.monotonic()
        text = str(server.post(it).json()["text"])
        latencies.append(time.monotonic() - t)
        return text

    start = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        hyps = list(pool.map(one, [item] * n))
    wall = time.monotonic() - start
    stop.set()
    poller.join()
    speed = n * item.duration_s / wall
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    hq = statistics.quantiles(health, n=20) if len(health) > 1 else health * 19
    value = (
        f"{speed:.1f}x RT  p50 {statistics.median(latencies):.1f} s  p95 {q[18]:.1f} s  "
        f"health p50/p95 {statistics.median(health) * 1000:.0f}/{hq[18] * 1000:.0f} ms  "
        f"WER {wer([item.reference] * n, hyps):.2%}"
    )
    return f"{n} concurrent clients ({item.name})", speed, value


if __name__ == "__main__":
    main()
