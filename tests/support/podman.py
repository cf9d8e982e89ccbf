"""The project's image built and run with podman the way ``docker compose up`` would, on machines
with no image registry: a Debian base made with mmdebstrap stands in for ``python:3.12-slim``.

The Dockerfile is built as it is. Only its ``pip install`` reads a wheelhouse made on this machine
(``pip download`` of the same requirements; this Python is Debian 12's 3.11, as the base's is),
mounted for the build alone where pip looks for its site configuration: the image gets the same
packages as from the registry, in a minute instead of ten. Images stay in podman's store and the
wheelhouse in ``~/.cache`` (per pyproject.toml), so a second run reuses them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from tests.support.harness import REPO

BASE = "docker.io/library/python:3.12-slim"
IMAGE = "localhost/asr-server:test"
# crun fails on these machines' hybrid cgroups; runc needs limits below the host's hard ones.
RUN = ["podman", "--runtime", "runc", "run", "--cgroup-manager=cgroupfs",
       "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]  # fmt: skip
PIP_SITE_DIR = "/etc/xdg/pip"  # pip reads pip.conf here; empty in the base, so the mount leaves no trace
_PIP_CONF = f"[global]\nno-index = true\nfind-links = {PIP_SITE_DIR}\n"
# As in Debian's official images (debuerreotype's docker-clean): apt leaves no caches in a layer.
_CLEAN = "/var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin"
_DOCKER_CLEAN = (
    f'DPkg::Post-Invoke {{ "rm -f {_CLEAN} || true"; }};\n'
    f'APT::Update::Post-Invoke {{ "rm -f {_CLEAN} || true"; }};\n'
    'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
)
_MMDEBSTRAP = [
    "mmdebstrap", "--variant=minbase", "--include=python3-venv,ca-certificates",
    "--dpkgopt=force-unsafe-io", '--aptopt=Acquire::Languages "none"',
    '--customize-hook=chroot "$1" python3 -m venv /usr/local',  # python and pip on PATH, as in the image
    f'--customize-hook=mkdir -p "$1{PIP_SITE_DIR}"',
    # apt-get clean skips the caches this configuration disables: they go here.
    f"--customize-hook=printf '%s' '{_DOCKER_CLEAN}' > \"$1/etc/apt/apt.conf.d/docker-clean\""
    ' && rm -f "$1"/var/cache/apt/*.bin',
    "bookworm", "-",
]  # fmt: skip
_BASE_ENV = ["ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ENV LANG=C.UTF-8"]


def podman(*args: str, timeout_s: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout_s, check=check)


def exists(image: str) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


def ensure_base() -> None:
    """``python:3.12-slim``'s stand-in: minimal Debian 12 with a venv at /usr/local, streamed from
    mmdebstrap into ``podman import`` (built in RAM where /dev/shm has room: dpkg is I/O-bound)."""
    if exists(BASE):
        return
    shm = Path("/dev/shm")
    env = {**os.environ, "TMPDIR": str(shm)} if shm.is_dir() and shutil.disk_usage(shm).free > 2e9 else None
    with tempfile.TemporaryFile() as log:
        debian = subprocess.Popen(_MMDEBSTRAP, stdout=subprocess.PIPE, stderr=log, env=env)
        changes = [arg for change in _BASE_ENV for arg in ("--change", change)]
        imported = subprocess.run(
            ["podman", "import", *changes, "-", BASE], stdin=debian.stdout, capture_output=True, timeout=900
        )
        assert debian.stdout is not None
        debian.stdout.close()
        if debian.wait(timeout=60) != 0 or imported.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"base image: {log.read()[-3000:]!r} {imported.stderr[-1000:]!r}")


def start_wheelhouse() -> tuple[Path, subprocess.Popen[bytes] | None]:
    """The image's requirements as files, fetched by this machine's pip (in the background, while the
    base is made). Kept per pyproject.toml; an older one is removed when a new one is complete."""
    pyproject = (REPO / "pyproject.toml").read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "asr-server"
    wheels = cache / f"wheels-{hashlib.sha256(pyproject).hexdigest()[:12]}"
    if wheels.is_dir():
        return wheels, None
    partial = wheels.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "pip.conf").write_text(_PIP_CONF)
    build_requires = tomllib.loads(pyproject.decode())["build-system"]["requires"]
    download = [sys.executable, "-m", "pip", "download", "-q", "-d", str(partial), f"{REPO}[postgres]"]
    pip = subprocess.Popen([*download, *build_requires], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return wheels, pip


def finish_wheelhouse(wheels: Path, download: subprocess.Popen[bytes] | None) -> None:
    if download is None:
        return
    output, _ = download.communicate(timeout=900)
    if download.returncode != 0:
        raise RuntimeError(f"pip download: {output.decode(errors='replace')[-3000:]}")
    wheels.with_suffix(".partial").rename(wheels)
    for old in wheels.parent.glob("wheels-*"):
        if old != wheels:
            shutil.rmtree(old, ignore_errors=True)


def build_image() -> str:
    """The Dockerfile as users build it (``--format docker`` keeps its HEALTHCHECK); says where the
    time went."""
    started = time.monotonic()
    wheels, download = start_wheelhouse()
    try:
        ensure_base()
    finally:
        based = time.monotonic()
        finish_wheelhouse(wheels, download)
    wheeled = time.monotonic()
    podman(
        "build", "--pull=never", "--isolation=chroot", "--network=host", "--format", "docker",
        "-v", f"{wheels}:{PIP_SITE_DIR}:ro", "-t", IMAGE, str(REPO), timeout_s=1800,
    )  # fmt: skip
    built = time.monotonic()
    return f"base {based - started:.0f} s, wheelhouse +{wheeled - based:.0f} s, image {built - wheeled:.0f} s"


def image_size_mb() -> float:
    return int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip()) / 1e6
