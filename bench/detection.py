"""What not declaring a language costs: the server's CPU seconds for the English clips of
``../shared/eval`` sent without a language (what openai-python and curl send) against the same
requests with ``language=en``, the same for the clips streamed, a stream's first delta both ways on
every long file, and detection's answers on every eval clip (FLEURS in five languages, every English
clip) and on noise and music (which must stay on the English model).

CPU seconds are the server process's own (user + system, from /proc), so other load on the machine
moves them less than wall time. Run by hand: ``python -m bench.detection [--rounds 2] [--deltas 5]``.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

import httpx
import numpy as np
import soundfile as sf

from bench.runners import URL, Server, probe_item
from tests.support.evalset import clips


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wav(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, 16000, format="WAV", subtype="PCM_16")
    return out.getvalue()


def noises() -> dict[str, bytes]:
    """Sounds with no speech: detection must leave them on the English model."""
    rng = np.random.default_rng(7)
    t = np.arange(16000 * 8) / 16000
    chord = np.sum([np.sin(2 * np.pi * f * t) for f in (262, 330, 392)], axis=0) * 0.1
    notes = np.concatenate([np.sin(2 * np.pi * f * t[:8000]) * 0.2 for f in (440, 494, 523, 587) * 4])
    return {
        "white noise": wav((rng.standard_normal(16000 * 8) * 0.1).astype(np.float32)),
        "chord": wav(chord.astype(np.float32)),
        "melody": wav(notes.astype(np.float32)),
        "hum": wav((0.3 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)),
    }


def post(server: Server, audio: bytes, **fields: str) -> tuple[float, dict[str, object]]:
    """(server CPU seconds, body) of one request."""
    assert server.proc.pid is not None
    before = cpu_s(server.proc.pid)
    r = httpx.post(
        server.base + URL,
        data={"model": "whisper-1", "response_format": "verbose_json", **fields},
        files={"file": ("a.wav", audio, "audio/wav")},
        timeout=600,
    )
    r.raise_for_status()
    return cpu_s(server.proc.pid) - before, r.json()


def stream_cpu_s(server: Server, audio: bytes, **fields: str) -> float:
    """Server CPU seconds of one stream, read to its end."""
    assert server.proc.pid is not None
    before = cpu_s(server.proc.pid)
    files = {"file": ("a.wav", audio, "audio/wav")}
    data = {"model": "whisper-1", "stream": "true", **fields}
    with httpx.stream("POST", server.base + URL, data=data, files=files, timeout=600) as r:
        for _ in r.iter_lines():
            pass
    return cpu_s(server.proc.pid) - before


def first_delta_s(server: Server, audio: bytes, **fields: str) -> float:
    start = time.monotonic()
    files = {"file": ("a.wav", audio, "audio/wav")}
    data = {"model": "whisper-1", "stream": "true", **fields}
    with httpx.stream("POST", server.base + URL, data=data, files=files, timeout=600) as r:
        for line in r.iter_lines():
            if "transcript.text.delta" in line:
                return time.monotonic() - start
    raise RuntimeError("no delta")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.detection")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--deltas", type=int, default=5, help="streams per long file and way")
    args = parser.parse_args()
    server = Server()
    server.cold_start(probe_item())
    english = clips("short") + [c for c in clips("multilingual") if c.raw["language"] == "en"]
    other = [c for c in clips("multilingual") if c.raw["language"] != "en"]
    data = {c.id: c.path.read_bytes() for c in english + other}
    post(server, data[other[0].id])  # base loaded before anything is timed
    declared = undeclared = 0.0
    for _ in range(args.rounds):
        for c in english:  # interleaved, so that load on the machine falls on both alike
            declared += post(server, data[c.id], language="en")[0]
            undeclared += post(server, data[c.id])[0]
    print(f"English clips ({len(english)} x {args.rounds}): CPU {undeclared:.1f} s without a language,")
    print(f"  {declared:.1f} s with language=en: {undeclared / declared:.2f}x")
    declared = undeclared = 0.0
    for c in english:
        declared += stream_cpu_s(server, data[c.id], language="en")
        undeclared += stream_cpu_s(server, data[c.id])
    print(
        f"  streamed (x 1): {undeclared:.1f} s without, {declared:.1f} s with: {undeclared / declared:.2f}x"
    )
    for clip in sorted(clips("long"), key=lambda c: c.duration_s):
        long_file = clip.path.read_bytes()
        with_en, without = [], []
        for _ in range(args.deltas):
            with_en.append(first_delta_s(server, long_file, language="en"))
            without.append(first_delta_s(server, long_file))
        a, b = statistics.median(without), statistics.median(with_en)
        print(
            f"stream first delta ({clip.duration_s:.0f} s file, median of {args.deltas}): "
            f"{a:.2f} s without, {b:.2f} s with: {a / b:.2f}x"
        )
    wrong = []
    for c in english + other:
        heard = str(post(server, data[c.id])[1]["language"]).split("-")[0]
        if heard != c.raw.get("language", "en"):
            wrong.append(f"{c.id}: {heard}")
    for name, audio in noises().items():
        heard = str(post(server, audio)[1]["language"]).split("-")[0]
        if heard != "en":
            wrong.append(f"{name}: {heard}")
    print(f"detection: {len(english) + len(other) + 4 - len(wrong)} of {len(english) + len(other) + 4} right")
    for line in wrong:
        print("  wrong:", line)
    server.proc.terminate()
    server.proc.wait(30)


if __name__ == "__main__":
    main()
