"""Benchmark: the server end to end against the bare faster-whisper library, same model and audio.

Run by hand (``make bench`` or ``python -m bench [--concurrency 1,2,4,8] [--skip-long-file]``); not part
of the tests. Prints one table: throughput (audio seconds per wall second) with ratios to the
library's sequential ``transcribe``, WER next to every speed figure, streaming latency, concurrency,
cold start and RSS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from app.config import load_settings  # noqa: E402
from app.engine.placement import available_cores, cpu_layout, select_placement  # noqa: E402
from bench.runners import Item, Library, Run, Server, load_items, probe_item  # noqa: E402
from tests.support.evalset import wer  # noqa: E402

MODES = (
    "library transcribe (sequential)",
    "library BatchedInferencePipeline (8)",
    "server, no language (1 client)",  # what openai-python and curl send
    "server, language=en (1 client)",
)


def throughput_round(server: Server, library: Library, items: list[Item], round_: int) -> list[Run]:
    """One pass over the items in each mode, interleaved file by file (the order rotating), so that a
    noisy machine's drift hits every mode alike; one Run per mode, in MODES order."""
    walls = [0.0] * len(MODES)
    texts: list[list[str]] = [[] for _ in MODES]
    for i, item in enumerate(items):
        for k in (round_ + i + j for j in range(len(MODES))):
            mode = k % len(MODES)
            if mode < 2:
                wall, text = library.transcribe(item.samples, batched=mode == 1)
            else:
                start = time.monotonic()
                text = server.post(item, **({"language": "en"} if mode == 3 else {})).json()["text"]
                wall = time.monotonic() - start
            walls[mode] += wall
            texts[mode].append(text)
    total_s = sum(it.duration_s for it in items)
    return [
        Run(total_s / w, wer([it.reference for it in items], t)) for w, t in zip(walls, texts, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved throughput rounds")
    parser.add_argument("--skip-long-file", action="store_true", help="skip the >= 10 min file")
    parser.add_argument(
        "--library-threads",
        type=int,
        default=0,
        help="the bare library's CPU threads (default: the server's)",
    )
    args = parser.parse_args()
    items = load_items(not args.skip_long_file)
    total_s = sum(it.duration_s for it in items)
    settings = load_settings()  # config.yaml and ASR_* overrides, as the server reads them
    placement = select_placement(settings.device, settings.compute_type)
    threads = settings.cpu_threads or available_cores()
    library_threads = args.library_threads or threads
    layout = cpu_layout(threads, settings.max_batch_size)  # how the server spreads them, on CPU
    server_threads = f"{layout.workers} x {layout.threads}" if placement.device == "cpu" else str(threads)
    probe = probe_item()
    rows: list[tuple[str, str, str]] = []

    server = Server()  # cold start first, while nothing else is cached
    try:
        ready_s, first_s = server.cold_start(probe)
        rows += [
            ("cold start -> ready (/health)", f"{ready_s:.1f} s", ""),
            (f"cold start -> first transcription ({probe.duration_s:.1f} s clip)", f"{first_s:.1f} s", ""),
        ]
        idle = []
        for _ in range(25):  # this machine's own latency floor, to read the loaded figures against
            idle.append(server.health_s())
            time.sleep(0.2)
        rows.append(("/health p50 / p95, server idle", _health_ms(idle), ""))
        library = Library(placement, library_threads, args.beam_size)
        rounds = [throughput_round(server, library, items, r) for r in range(args.rounds)]
        rows += throughput_rows(rounds)
        deltas, chunks = [], []
        for _ in range(3):  # best of 3 each, interleaved
            first_delta_s, gaps = server.stream(items[0])
            deltas.append(first_delta_s)
            chunks.append(library.first_chunk_s(items[0]))
        rows.append(
            (
                f"stream first delta ({items[0].name}, best of 3)",
                f"{min(deltas):.2f} s",
                f"{min(deltas) / min(chunks):.2f} x library first chunk ({min(chunks):.2f} s)",
            )
        )
        if gaps:
            rows.append(
                (
                    "stream gap between deltas p50/max",
                    f"{statistics.median(gaps):.2f} / {max(gaps):.2f} s",
                    "",
                )
            )
        for n in [int(x) for x in args.concurrency.split(",")]:
            # Each n > 1 against a one-client run just before it: drift between rows cancels out.
            one = concurrency_run(server, 1, items[0]) if n > 1 else None
            run = concurrency_run(server, n, items[0])
            ratio = (
                "1.00" if one is None else f"{run[1] / one[1]:.2f} x 1 client run before ({one[1]:.1f}x RT)"
            )
            rows.append((run[0], run[2], ratio))
        time.sleep(3)  # steady: idle for longer than the second after which the server trims memory
        peak, steady = server.rss_mib()
    finally:
        server.close()
    rows.append(("RSS peak / steady", f"{peak:.0f} / {steady:.0f} MiB", ""))

    width = max(len(r[0]) for r in rows)
    print(
        f"\nmodel tiny.en {placement.compute_type} on {placement.device}, beam {args.beam_size}, "
        f"{total_s:.0f} s of audio, {args.rounds} rounds, {available_cores()} cores: "
        f"server {server_threads} threads, library {library_threads} threads"
    )
    print(f"{'measure'.ljust(width)}  {'value'.ljust(44)}  ratio")
    for name, value, ratio in rows:
        print(f"{name.ljust(width)}  {value.ljust(44)}  {ratio}")
    print(json.dumps({"rows": rows}), file=sys.stderr)


def throughput_rows(rounds: list[list[Run]]) -> list[tuple[str, str, str]]:
    """Median speed over the rounds per mode; ratios are the median of each round's own ratio, with
    every round's value after it."""

    def ratio(mode: int, base: int) -> str:
        each = [r[mode].speed / r[base].speed for r in rounds]
        return f"{statistics.median(each):.2f} [{' '.join(f'{x:.2f}' for x in each)}]"

    first = rounds[0]
    rows: list[tuple[str, str, str]] = []
    for mode, name in enumerate(MODES):
        speed = statistics.median(r[mode].speed for r in rounds)
        rows.append((name, f"{speed:.1f}x RT  WER {first[mode].wer:.2%}", ratio(mode, 0)))
    for mode in (2, 3):
        worse = 100 * (first[mode].wer - first[0].wer)
        rows[mode] = (*rows[mode][:2], f"{ratio(mode, 0)}, vs batched {ratio(mode, 1)}, WER {worse:+.2f} pt")
    return rows


def _ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=20) if len(samples) > 1 else samples * 19
    return f"{statistics.median(samples) * 1000:.0f} / {q[18] * 1000:.0f} ms"


def _health_ms(pairs: list[tuple[float, float]]) -> str:
    """p50 / p95 of the probes after a sleep, and of the back-to-back ones (see ``health_s``)."""
    after_sleep, back_to_back = zip(*pairs, strict=True)
    return f"{_ms(list(after_sleep))} (back to back {_ms(list(back_to_back))})"


def concurrency_run(server: Server, n: int, item: Item) -> tuple[str, float, str]:
    """(label, aggregate audio s per wall s, value) for n clients posting the same file at once."""
    health: list[tuple[float, float]] = []
    fresh: list[float] = []  # a new connection per probe, as a load balancer's health check makes
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            health.append(server.health_s())
            fresh.append(server.health_fresh_s())
            stop.wait(0.2)

    poller = threading.Thread(target=poll)
    poller.start()
    latencies: list[float] = []

    def one(it: Item) -> str:
        t = time.monotonic()
        text = str(server.post(it).json()["text"])
        latencies.append(time.monotonic() - t)
        return text

    start, cpu = time.monotonic(), server.cpu_s()
    with ThreadPoolExecutor(n) as pool:
        hyps = list(pool.map(one, [item] * n))
    wall = time.monotonic() - start
    # How many cores the server kept busy: n clients can gain at most cores / this over one.
    busy = (server.cpu_s() - cpu) / wall
    stop.set()
    poller.join()
    speed = n * item.duration_s / wall
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    value = (
        f"{speed:.1f}x RT  {busy:.2f} cores busy  "
        f"p50 {statistics.median(latencies):.1f} s  p95 {q[18]:.1f} s  "
        f"health p50/p95 {_health_ms(health)}, new connection {_ms(fresh)}  "
        f"WER {wer([item.reference] * n, hyps):.2%}"
    )
    return f"{n} concurrent clients ({item.name})", speed, value


if __name__ == "__main__":
    main()
