"""Virtualenvs holding the real client SDKs, so tests can drive the server with them.

The server runs on Python 3.11, but the AI Refinery SDK needs Python >= 3.12 (and its seed-era
release only imports on 3.13), so the clients cannot share the test interpreter: each one gets
its own virtualenv under ``<repo>/.client-venvs/<name>`` (or ``$ASR_CLIENT_VENVS_DIR/<name>``),
and tests run the driver scripts in ``tests/clients/`` with that venv's python.

Why the pieces below exist:

* Exact pins plus a full lock file (``tests/clients/locks/<name>.txt``, used as pip constraints)
  keep what goes on the wire fixed: a new SDK or pydantic release must not silently change a test.
* A marker file inside the venv records the interpreter version, the requirements and the lock;
  any change to them rebuilds the venv, so a bumped pin can never be tested against an old install.
* A file lock serialises builders, so two pytest processes (xdist workers, two terminals) never
  build into the same directory at once; the marker is written last, so a half-built venv is
  never mistaken for a finished one.
* ``uv`` installs are used when available (``make install`` puts it in the project's venv, else it
  is bootstrapped into ``_uv`` beside the venvs) because pip takes 13-16 minutes per venv on these
  machines (index pages are slow and pip's HTTP cache stays empty), while uv takes well under a
  minute.  Set ``ASR_CLIENT_VENVS_INSTALLER=pip`` to force plain pip.
* A venv compiles the bytecode of the modules its drivers import as they first import them, not
  all of its modules at install time (see ``_build``).
* A missing interpreter raises ``RuntimeError``: a test that needs a client must fail loudly
  rather than skip and let a broken client compatibility pass unnoticed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENTS_DIR = REPO_ROOT / "tests" / "clients"
LOCKS_DIR = CLIENTS_DIR / "locks"

VENVS_DIR_ENV = "ASR_CLIENT_VENVS_DIR"
INSTALLER_ENV = "ASR_CLIENT_VENVS_INSTALLER"
UV_REQUIREMENT = "uv==0.13.9"
MARKER_NAME = ".client-venv.json"

# Generous: pip without uv needs ~15 minutes for the larger SDK on a slow index.
_INSTALL_TIMEOUT_S = 40 * 60
_PROBE_TIMEOUT_S = 60


@dataclass(frozen=True)
class ClientSpec:
    """What one client venv holds.

    ``python`` is the exact interpreter version wanted (pyenv name); a different patch release
    of the same minor version found on PATH is accepted when pyenv is absent.  ``lock`` names a
    constraints file under ``tests/clients/locks`` pinning every transitive dependency.
    """

    python: str
    requirements: tuple[str, ...]
    lock: str | None = None


SPECS: dict[str, ClientSpec] = {
    # Current AI Refinery SDK and openai-python share one venv: airefinery-sdk 1.33.2 does not
    # depend on openai at all, so the two cannot conflict.
    "air-current": ClientSpec(
        python="3.12.1",
        requirements=("airefinery-sdk==1.33.2", "openai==3.63.0"),
        lock="air-current.txt",
    ),
    # The seed-era SDK: its modules only import on 3.13; it uses aiofiles without declaring it,
    # and the seed examples need python-dotenv for ``load_dotenv``.
    "air-1.14": ClientSpec(
        python="3.13.0",
        requirements=("airefinery-sdk==1.14.2", "aiofiles==25.1.0", "python-dotenv==1.2.4"),
        lock="air-1.14.txt",
    ),
}


def venvs_root() -> Path:
    """Where client venvs live: ``$ASR_CLIENT_VENVS_DIR`` (lets CI keep them outside a fresh clone)."""
    override = os.environ.get(VENVS_DIR_ENV)
    return Path(override).resolve() if override else REPO_ROOT / ".client-venvs"


def _probe(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """Run ``cmd -c ...`` and return (sys.executable, version) or None when it does not work."""
    code = "import platform, sys; print(sys.executable); print(platform.python_version())"
    try:
        out = subprocess.run(
            [*cmd, "-c", code],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
            env=env,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return (out[0], out[1]) if len(out) == 2 else None


def find_interpreter(version: str) -> tuple[Path, str]:
    """Locate a base interpreter for ``version``; returns (real executable path, actual version).

    Tries pyenv's exact version first (``PYENV_VERSION=<version> pyenv exec python3``, which does
    not depend on which ``python3`` is first on PATH, e.g. an activated venv), then
    ``python<major>.<minor>`` on PATH.  Raises RuntimeError when neither works.
    """
    minor = ".".join(version.split(".")[:2])
    tried: list[str] = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        env = {**os.environ, "PYENV_VERSION": version}
        found = _probe([pyenv, "exec", "python3"], env)
        tried.append(f"PYENV_VERSION={version} pyenv exec python3 -> {found}")
        if found and found[1] == version:
            return Path(found[0]), found[1]
    candidate = shutil.which(f"python{minor}")
    if candidate:
        found = _probe([candidate])
        tried.append(f"{candidate} -> {found}")
        if found and ".".join(found[1].split(".")[:2]) == minor:
            return Path(found[0]), found[1]
    else:
        tried.append(f"python{minor}: not on PATH")
    raise RuntimeError(
        f"No Python {version} interpreter for the client SDK venvs (needs {minor}.x): "
        f"install it (e.g. `pyenv install {version}`) or put python{minor} on PATH. "
        f"Tried: {'; '.join(tried)}"
    )


def _lock_text(spec: ClientSpec) -> str:
    """The constraints file's content ('' when the spec has none)."""
    return (LOCKS_DIR / spec.lock).read_text(encoding="utf-8") if spec.lock else ""


def _wanted_marker(spec: ClientSpec) -> dict[str, object]:
    """Everything that, when changed, must rebuild the venv."""
    return {
        "format": 2,  # bump when the build recipe itself changes
        "python": spec.python,
        "requirements": list(spec.requirements),
        "lock": spec.lock,
        "lock_sha256": hashlib.sha256(_lock_text(spec).encode()).hexdigest(),
    }


def _is_current(target: Path, wanted: dict[str, object]) -> bool:
    """True when ``target`` is a finished venv built from exactly ``wanted``."""
    try:
        marker = json.loads((target / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict) and marker.get("wanted") == wanted and (target / "bin" / "python").exists()
    )


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock across processes (released automatically if a process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _run(cmd: list[str], what: str) -> None:
    """Run a build step; on failure raise with the tail of its output so the test log says why."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{what} timed out after {exc.timeout} s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def _find_uv(root: Path) -> Path | None:
    """A usable ``uv`` binary: on PATH, beside this interpreter, or bootstrapped into ``root/_uv``.

    Returns None (plain pip is used) when ``ASR_CLIENT_VENVS_INSTALLER=pip`` or uv cannot be had.
    """
    choice = os.environ.get(INSTALLER_ENV, "auto")
    if choice == "pip":
        return None
    for found in (shutil.which("uv"), str(Path(sys.executable).parent / "uv")):
        if found and Path(found).exists():
            return Path(found)
    tool = root / "_uv"
    uv = tool / "bin" / "uv"
    with _file_lock(root / ".uv.lock"):
        if not uv.exists():
            shutil.rmtree(tool, ignore_errors=True)
            try:
                _run([sys.executable, "-m", "venv", str(tool)], "creating the uv tool venv")
                _run(
                    [str(tool / "bin" / "python"), "-m", "pip", "install", "-q", UV_REQUIREMENT],
                    "installing uv",
                )
            except RuntimeError:
                if choice == "uv":
                    raise
                shutil.rmtree(tool, ignore_errors=True)
                return None
    return uv


def _build(target: Path, spec: ClientSpec, wanted: dict[str, object]) -> None:
    """(Re)create ``target`` from scratch and write the marker last."""
    interpreter, actual = find_interpreter(spec.python)
    uv = _find_uv(target.parent)
    shutil.rmtree(target, ignore_errors=True)
    # With uv the venv needs no pip of its own; skipping ensurepip saves ~40 s here.
    no_pip = ["--without-pip"] if uv is not None else []
    _run([str(interpreter), "-m", "venv", *no_pip, str(target)], f"creating venv {target}")
    python = target / "bin" / "python"
    constraints = ["-c", str(LOCKS_DIR / spec.lock)] if spec.lock else []
    if uv is not None:
        cmd = [str(uv), "pip", "install", "--python", str(python)]
        cmd += [*spec.requirements, *constraints]
    else:
        cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-compile"]
        cmd += [*spec.requirements, *constraints]
    _run(cmd, f"installing {', '.join(spec.requirements)}")
    # This environment sets PYTHONDONTWRITEBYTECODE=1: without .pyc files every driver run would
    # compile the SDK it imports again (~90 s for airefinery 1.14). Compiling the whole venv at
    # install time (uv's --compile-bytecode) took longer than the rest of the build: air-1.14 holds
    # ~8,600 modules and its drivers import ~1,650. So the venv writes the bytecode of what its runs
    # import, once, whatever the caller's environment (a .pth line runs at interpreter start-up).
    site_packages = next((target / "lib").glob("python3.*/site-packages"))
    (site_packages / "_client_venv_bytecode.pth").write_text(
        "import sys; sys.dont_write_bytecode = False\n", encoding="utf-8"
    )
    marker = {"wanted": wanted, "interpreter": str(interpreter), "interpreter_version": actual}
    tmp = target / (MARKER_NAME + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target / MARKER_NAME)


def ensure_client_python(name: str) -> Path:
    """Return the python of the client venv ``name``, building it first if missing or stale.

    Safe to call from several processes at once: builders serialise on a per-venv file lock and
    re-check the marker after taking it, so only the first one builds.
    """
    try:
        spec = SPECS[name]
    except KeyError:
        raise ValueError(f"unknown client venv {name!r}; known: {', '.join(sorted(SPECS))}") from None
    root = venvs_root()
    target = root / name
    python = target / "bin" / "python"
    wanted = _wanted_marker(spec)
    if _is_current(target, wanted):
        return python
    with _file_lock(root / f".{name}.lock"):
        if not _is_current(target, wanted):
            _build(target, spec, wanted)
    return python


def main(argv: list[str]) -> int:
    """``python -m tests.client_venvs [NAME...]``: build (or check) venvs ahead of a test run."""
    for name in argv or sorted(SPECS):
        print(f"{name}: {ensure_client_python(name)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
