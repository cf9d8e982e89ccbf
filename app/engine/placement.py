"""Where a model runs: device and compute type, and how its CPU threads are spread.

CTranslate2 is imported only when a device count or the supported compute types must be asked of
it, so the choice is tested (with the counts injected) without loading it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Placement:
    device: str
    compute_type: str


def select_placement(
    device: str,
    compute_type: str,
    *,
    cuda_devices: int | None = None,
    supported: set[str] | None = None,
) -> Placement:
    """Resolve ``auto``/``default`` to a concrete device and compute type.

    ``auto`` takes CUDA when CTranslate2 sees a GPU. ``default`` is int8 on CPU (fastest there with
    near-float accuracy) and float16 on CUDA, falling back to what the device supports. The counts
    are injectable so the choice is tested on machines without a GPU.
    """
    if cuda_devices is None:
        import ctranslate2

        cuda_devices = ctranslate2.get_cuda_device_count()
    if device == "auto":
        device = "cuda" if cuda_devices > 0 else "cpu"
    if device == "cuda" and cuda_devices == 0:
        raise RuntimeError("device 'cuda' was requested but CTranslate2 sees no CUDA device")
    if supported is None:
        import ctranslate2

        supported = set(ctranslate2.get_supported_compute_types(device))
    if compute_type == "default":
        preferences = ["float16", "int8_float16", "float32"] if device == "cuda" else ["int8", "float32"]
        compute_type = next((c for c in preferences if c in supported), "float32")
    elif compute_type not in supported and compute_type != "auto":
        raise RuntimeError(
            f"compute type {compute_type!r} is not supported on {device}; "
            f"supported: {', '.join(sorted(supported))}"
        )
    return Placement(device, compute_type)


def available_cores() -> int:
    """CPU cores this process may run on (the container's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class CpuLayout:
    """How a model uses its CPU threads: ``workers`` model calls at once, of ``threads`` each."""

    workers: int
    threads: int


def cpu_layout(cores: int, max_batch_size: int) -> CpuLayout:
    """Spread the cores over parallel model calls (windows of a batch) before threads within one.

    Threads within one CTranslate2 call synchronise at every operation, and a beam-search step is
    a few small operations: on the 2-core VM two threads made one window's beam search 2-10x slower
    than one thread (4.5 s vs 0.5 s), while two windows decoded side by side, one thread each, took
    about half the time of the same batch on two threads. Each worker keeps the rest of the cores,
    so a many-core machine still gives each call several threads.
    """
    workers = max(1, min(cores, max_batch_size))
    return CpuLayout(workers, max(1, cores // workers))
