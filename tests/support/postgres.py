"""A throwaway PostgreSQL cluster for tests: Debian's ``postgresql`` binaries, ``initdb`` into a
temporary folder, ``pg_ctl`` on a free loopback port, removed afterwards (run as the ``postgres``
user when the tests run as root: PostgreSQL refuses root)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.harness import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: apt-get install -y postgresql")
    return found[-1]


def _as_postgres(*args: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a cluster; yield its URL (database ``asr``); stop and remove it."""
    root = Path(tempfile.mkdtemp(prefix="asr-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    data = root / "data"
    try:
        _as_postgres(_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        options = f"-p {port} -k {root} -h 127.0.0.1"
        _as_postgres(_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
        try:
            _as_postgres(_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "asr")
            yield f"postgresql://postgres@127.0.0.1:{port}/asr"
        finally:
            _as_postgres(_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
