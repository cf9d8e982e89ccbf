"""Seeded mutations of real uploads (bit flips, truncations, lying header fields, spliced and zeroed
runs), decoded in-process; run by tests/integration/test_fuzz.py in a process of its own under a memory guard.

``python -m tests.support.fuzz_decode FOLDER SEED PER_FILE`` prints a JSON summary: outcomes per kind and
every failure (anything but audio or a 4xx error).
"""

from __future__ import annotations

import json
import random
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from app.audio.decode import decode_audio
from app.audio.pcm import PcmFormat
from app.errors import AsrError

Mutation = Callable[[random.Random, bytes], bytes]
_FIELDS = (0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x10000, 0xFFFF)


def bit_flips(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 24)):
        # half the flips land in the header, where parsers decide how much to allocate
        i = rng.randrange(min(len(out), 256)) if rng.random() < 0.5 else rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncation(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(1, len(data))]


def lying_header(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(max(1, min(len(out) - 4, 160)))
        value = rng.choice(_FIELDS) if rng.random() < 0.7 else rng.getrandbits(32)
        out[i : i + 4] = value.to_bytes(4, rng.choice(["little", "big"]))
    return bytes(out)


def splice(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    if rng.random() < 0.5:
        return data[:i] + rng.randbytes(rng.randint(1, 4096)) + data[i:]
    j = rng.randrange(len(data))
    return data[:i] + data[j : j + rng.randint(1, 8192)] + data[i:]


def zero_run(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    n = rng.randint(1, 2048)
    return data[:i] + bytes(min(n, len(data) - i)) + data[i + n :]


MUTATIONS: dict[str, Mutation] = {
    "bit_flips": bit_flips,
    "truncation": truncation,
    "lying_header": lying_header,
    "splice": splice,
    "zero_run": zero_run,
}


def mutants(files: list[Path], seed: int, per_file: int) -> list[tuple[str, str, bytes]]:
    """(file name, mutation, bytes), the same for a seed."""
    rng = random.Random(seed)
    out = []
    for path in files:
        data = path.read_bytes()
        for _ in range(per_file):
            kind = rng.choice(sorted(MUTATIONS))
            out.append((path.name, kind, MUTATIONS[kind](rng, data)))
    return out


def main(folder: str, seed: str, per_file: str) -> None:
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    for name, kind, data in mutants(files, int(seed), int(per_file)):
        try:
            decode_audio(
                data,
                content_type="audio/wav",
                pcm=PcmFormat(),
                max_duration_s=600,
                max_source_samples=50_000_000,
            )
            outcomes["decoded"] += 1
        except AsrError as exc:
            outcomes[str(exc.status_code)] += 1
            if not 400 <= exc.status_code < 500 or " at 0x" in exc.message:
                failures.append(f"{name} {kind}: {exc.status_code} {exc.message}")
        except Exception:
            failures.append(f"{name} {kind}: {traceback.format_exc(limit=3)}")
    print(json.dumps({"outcomes": outcomes, "failures": failures, "files": len(files)}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
