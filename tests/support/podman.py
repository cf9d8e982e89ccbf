"""The project's image built and run with podman the way ``docker compose up`` would, on machines
with no image registry: a Debian base made with debootstrap stands in for ``python:3.12-slim``.

Both images stay in podman's store, so a second run reuses the base and the unchanged layers."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from tests.support.harness import REPO

BASE = "docker.io/library/python:3.12-slim"
IMAGE = "localhost/asr-server:test"
# crun fails on these machines' hybrid cgroups; runc needs limits below the host's hard ones.
RUN = ["podman", "--runtime", "runc", "run", "--cgroup-manager=cgroupfs",
       "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]  # fmt: skip
_BASE_FILE = """FROM localhost/bookworm-min
RUN python3 -m venv /usr/local
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt
"""


def podman(*args: str, timeout_s: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout_s, check=check)


def exists(image: str) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


def ensure_base() -> None:
    """``python:3.12-slim``'s stand-in: minimal Debian 12 with a venv at /usr/local (python and pip
    on PATH), and this machine's CA bundle so that pip reaches the package registry."""
    if exists(BASE):
        return
    with tempfile.TemporaryDirectory(prefix="asr-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        include = "--include=python3,python3-venv,python3-pip,ca-certificates"
        subprocess.run(
            ["debootstrap", "--variant=minbase", include, "bookworm", str(rootfs)],
            capture_output=True, check=True, timeout=900,
        )  # fmt: skip
        (rootfs / "etc/ssl/certs/ca-certificates.crt").write_bytes(
            Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
        )
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        env_path = "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        subprocess.run(
            ["podman", "import", "--change", env_path, "-", "localhost/bookworm-min"],
            stdin=tar.stdout, capture_output=True, check=True, timeout=600,
        )  # fmt: skip
        tar.wait(timeout=60)
        (Path(tmp) / "Base.Containerfile").write_text(_BASE_FILE)
        build = ["build", "--isolation=chroot", "--network=host", "-t", BASE, "-f", "Base.Containerfile", tmp]
        subprocess.run(["podman", *build], capture_output=True, check=True, timeout=600, cwd=tmp)


def build_image() -> None:
    """The Dockerfile as users build it (``--format docker`` keeps its HEALTHCHECK)."""
    ensure_base()
    podman(
        "build", "--pull=never", "--isolation=chroot", "--network=host", "--format", "docker",
        "-t", IMAGE, str(REPO), timeout_s=1800,
    )  # fmt: skip


def image_size_mb() -> float:
    return int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip()) / 1e6
