"""The allocator settings the ``asr-server`` command applies (``app.engine.memory``), in fresh processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocates, fills and frees a 64 MB block three times on a second thread, as CTranslate2's threads do
# with attention buffers, and prints the page faults of the last two rounds: tuned, they reuse the
# first round's memory.
_PROBE = """
import ctypes, ctypes.util, resource, sys, threading
from app.engine.memory import release_free_memory, tune_malloc
if sys.argv[1] == "tuned":
    tune_malloc()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
faults = []
def work():
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = libc.malloc(64_000_000)
        ctypes.memset(block, 1, 64_000_000)
        libc.free(block)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
thread = threading.Thread(target=work)
thread.start()
thread.join()
release_free_memory()
print(sum(faults[1:]))
"""


def _refaults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_tuned_malloc_reuses_big_blocks_instead_of_faulting_them_in_again() -> None:
    pages = 64_000_000 // 4096
    assert _refaults("default") > pages  # each round faults its 64 MB in afresh
    assert _refaults("tuned") < pages // 20


def test_an_unconfigured_default_model_is_a_clear_startup_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app", "--port", "1"],
        env={"ASR_DEFAULT_MODEL": "nope", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "default_model 'nope' is not one of the configured models" in proc.stderr
    assert "Traceback" not in proc.stderr
