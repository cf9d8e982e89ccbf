"""What the benchmark runs: the bare faster-whisper library and the server process, and the audio
both get (the eval set's long files)."""

from __future__ import annotations

import http.client
import itertools
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from app.audio.decode import decode_audio
from app.audio.pcm import PcmFormat
from app.config import load_settings
from app.engine.placement import Placement
from app.models.registry import embedded_model_path
from tests.support.evalset import clips
from tests.support.harness import free_port

REPO = Path(__file__).resolve().parents[1]
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
        items.append(Item(clip.id, _wav(audio.to_float()), audio.to_float(), clip.text))
    if with_long_file:  # >= 10 minutes: the long files twice, with a second of silence between
        gap = np.zeros(16000, np.float32)
        parts = [p for it in items * 2 for p in (it.samples, gap)]
        samples = np.concatenate(parts)
        text = " ".join(it.reference for it in items * 2)
        items.append(Item(f"long-{len(samples) / 16000 / 60:.0f}min", _wav(samples), samples, text))
    return items


def probe_item() -> Item:
    """The cold-start probe: the shortest short clip (a first transcription, not a long one)."""
    clip = min(clips("short"), key=lambda c: c.path.stat().st_size)
    audio = decode_audio(clip.path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=1e6)
    return Item(clip.id, _wav(audio.to_float()), audio.to_float(), clip.text)


def _wav(samples: np.ndarray) -> bytes:
    with tempfile.SpooledTemporaryFile() as f:
        sf.write(f, samples, 16000, format="WAV", subtype="PCM_16")
        f.seek(0)
        return f.read()


@dataclass(frozen=True)
class Run:
    speed: float  # audio seconds per wall second
    wer: float


class Library:
    """The bare library on the device, compute type and CPU threads the server resolves its settings to
    (CTranslate2's own default would be 4 threads whatever the machine)."""

    def __init__(self, placement: Placement, threads: int, beam_size: int) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.model = WhisperModel(
            str(embedded_model_path()),
            device=placement.device,
            compute_type=placement.compute_type,
            cpu_threads=threads,
        )
        self.batched = BatchedInferencePipeline(self.model)
        self.beam_size = beam_size

    def transcribe(self, samples: np.ndarray, *, batched: bool) -> tuple[float, str]:
        """(wall seconds, text) of one file, sequential ``transcribe`` or batched (8)."""
        start = time.monotonic()
        if batched:
            segments, _ = self.batched.transcribe(
                samples, beam_size=self.beam_size, language="en", batch_size=8
            )
        else:
            segments, _ = self.model.transcribe(samples, beam_size=self.beam_size, language="en")
        text = "".join(s.text for s in segments)
        return time.monotonic() - start, text

    def first_chunk_s(self, item: Item) -> float:
        """Seconds for the file's first VAD chunk alone (what a stream's first delta waits for)."""
        from app.audio.chunking import ChunkingOptions, chunk_frames
        from app.audio.vad import detect_speech

        opts = ChunkingOptions(**load_settings().vad.model_dump())
        chunk = chunk_frames(detect_speech(item.samples, opts.aggressiveness), len(item.samples), opts)[0]
        return self.transcribe(item.samples[chunk.start : chunk.end], batched=False)[0]


class Server:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        """``env``: settings (``ASR_*``) over this process's environment."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ASR_LOG_LEVEL": "warning", **(env or {})}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO,
            env=env,
        )
        # One kept-alive connection for /health probes: a fresh client per probe would time its own
        # set-up (an SSL context, a TCP connect), not the server.
        self._health = httpx.Client(base_url=self.base, timeout=30)

    def health_s(self) -> tuple[float, float]:
        """Seconds two GET /health back to back take: the first after the prober slept, the
        second at once. On a VM an idle CPU can wake hundreds of ms late, so the first includes the
        prober's own wake-up; the second, with both ends awake, is the server's answer time."""
        times = []
        for _ in range(2):
            start = time.monotonic()
            self._health.get("/health")
            times.append(time.monotonic() - start)
        return times[0], times[1]

    def health_fresh_s(self) -> float:
        """Seconds one GET /health takes on a new connection (connect included), as a load
        balancer's check makes it: plain ``http.client``, since ``httpx.get`` builds an SSL context
        per call (~30 ms of the prober's own CPU here, more under load)."""
        start = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"/health answered {response.status}")
        return time.monotonic() - start

    def post(self, item: Item, **fields: str) -> httpx.Response:
        return httpx.post(
            self.base + URL,
            data={"model": "whisper-1", **fields},
            files={"file": ("a.wav", item.wav, "audio/wav")},
            timeout=3600,
        )

    def cold_start(self, probe: Item) -> tuple[float, float]:
        """Seconds from process start to ready (/health answers: model loaded) and to
        the first successful transcription after that."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if self._health.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise RuntimeError("server did not start")
        ready_s = time.monotonic() - self.started
        if self.post(probe).status_code != 200:
            raise RuntimeError("the first transcription failed")
        return ready_s, time.monotonic() - self.started

    def rss_mib(self) -> tuple[float, float]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024

    def cpu_s(self) -> float:
        """CPU seconds the server process has used (user + system, all threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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
