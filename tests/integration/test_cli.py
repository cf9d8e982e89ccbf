"""``asr-server transcribe``, the real command as a subprocess on real recordings: every format
written and parseable, failures listed with the others still done, re-runs skip, ``--overwrite``,
Ctrl-C never leaves a partial file, and ``--server`` against the real server."""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import srt
import webvtt
from prometheus_client.parser import text_string_to_metric_families

from app.cli.files import TEMP_PREFIX
from tests.support.containers import CLIP, VIDEO_IN, ffmpeg
from tests.support.evalset import wer
from tests.support.harness import REPO, LiveServer, free_port

FORMATS = ["-f", "srt,vtt,txt,json"]
CLI = [sys.executable, "-m", "app", "transcribe"]


def run_cli(*args: str | Path, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real clip, a phone video of it in a subfolder, a file no decoder reads, and a note."""
    root = tmp_path_factory.mktemp("recordings")
    shutil.copy(CLIP.path, root / "clip.flac")
    (root / "broken.mp3").write_bytes(random.Random(7).randbytes(6000))
    (root / "notes.txt").write_text("not a recording\n")
    (root / "video").mkdir()
    video = ["-shortest", "-c:v", "libx264", "-c:a", "aac", "-f", "mp4"]
    ffmpeg(root / "video" / "talk.mp4", [*VIDEO_IN, "-i", str(CLIP.path)], video)
    return root


@pytest.fixture(scope="module")
def first_run(folder: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(folder, *FORMATS, "-l", "en", "--jobs", "2")  # two files share the batches


def outputs(stem: Path) -> dict[str, Path]:
    return {ext: stem.with_name(f"{stem.name}.{ext}") for ext in ("srt", "vtt", "txt", "json")}


def check_outputs(stem: Path) -> None:
    """Every format parses and holds the clip's words."""
    out = outputs(stem)
    cues = list(srt.parse(out["srt"].read_text()))
    assert cues and all(c.end > c.start for c in cues)
    captions = webvtt.read(str(out["vtt"])).captions
    assert [c.text.replace("\n", " ") for c in captions] == [c.content.replace("\n", " ") for c in cues]
    text = out["txt"].read_text()
    assert json.loads(out["json"].read_text())["text"] == text.strip()
    assert wer([CLIP.text], [text]) < 0.3, text


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_a_folder_gets_every_format_and_the_failure_is_listed(
    folder: Path, first_run: subprocess.CompletedProcess[str]
) -> None:
    assert first_run.returncode == 1, first_run.stderr
    check_outputs(folder / "clip")
    check_outputs(folder / "video" / "talk")  # a video's sound track
    failed = [line for line in first_run.stdout.splitlines() if line.startswith("failed: ")]
    assert failed == [f"failed: {folder / 'broken.mp3'}: {failed[0].split(': ', 2)[2]}"]
    assert "audio container" in failed[0]
    assert "2 done, 1 failed of 3 files" in first_run.stdout
    assert not (folder / "notes.srt").exists()  # not a media file: not picked from the folder
    assert not list(folder.glob("broken.*.srt")) and not (folder / "broken.srt").exists()
    assert not temp_files(folder)


def test_a_rerun_skips_done_files_and_overwrite_redoes_them(
    folder: Path, first_run: subprocess.CompletedProcess[str]
) -> None:
    assert first_run.returncode == 1
    written = {p: p.stat().st_mtime_ns for p in outputs(folder / "clip").values()}
    again = run_cli(folder, *FORMATS, "-l", "en")
    assert again.returncode == 1  # the broken file still fails
    assert f"skip  {folder / 'clip.flac'}" in again.stdout
    assert f"skip  {folder / 'video' / 'talk.mp4'}" in again.stdout
    assert "0 done" not in again.stdout and "2 skipped, 1 failed of 3 files" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in written} == written
    redone = run_cli(folder / "clip.flac", *FORMATS, "-l", "en", "--overwrite")
    assert redone.returncode == 0, redone.stdout + redone.stderr
    assert all(p.stat().st_mtime_ns > t for p, t in written.items())
    check_outputs(folder / "clip")


def lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout lines as they come, read on a thread (a read never blocks the test)."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    out = proc.stdout

    def pump() -> None:
        for line in out:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for(lines: queue.Queue[str], prefix: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting {prefix!r} within {timeout_s} s")


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_leaves_only_whole_outputs(tmp_path: Path, presses: int) -> None:
    """Once: the file in progress is finished and no other starts. Twice: it stops at once. Either
    way every output there is whole (it parses) and no temporary file is left."""
    for i in range(4):
        shutil.copy(CLIP.path, tmp_path / f"take{i}.flac")
    command = [*CLI, str(tmp_path), *FORMATS, "-l", "en"]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as proc:
        lines = lines_of(proc)
        wait_for(lines, "start ", timeout_s=300)
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.2)
        try:
            assert proc.wait(timeout=20 if presses == 2 else 300) == 130
        finally:
            proc.kill()
    assert not temp_files(tmp_path)
    finished = [i for i in range(4) if outputs(tmp_path / f"take{i}")["srt"].exists()]
    assert len(finished) < 4  # the run stopped early
    for i in range(4):
        present = [p.exists() for p in outputs(tmp_path / f"take{i}").values()]
        assert all(present) or not any(present), f"take{i}: some outputs missing"
    for i in finished:
        check_outputs(tmp_path / f"take{i}")


def test_server_mode_sends_the_files_to_a_running_server(live_server: LiveServer, tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(random.Random(3).randbytes(6000))
    out = tmp_path / "out"
    args = ["--server", live_server.base_url, "--api-key", live_server.api_key, "--out", str(out)]
    jobs_before = completed_jobs(live_server)
    r = run_cli(CLIP.path, broken, *FORMATS, "-l", "en", *args)
    assert r.returncode == 1, r.stdout + r.stderr
    check_outputs(out / CLIP.path.stem)
    assert completed_jobs(live_server) == jobs_before + 1  # one job gave the clip's four formats
    # through the server's jobs API: refused before it is queued, for the synchronous endpoint's reason
    assert f"failed: {broken}: " in r.stdout and "job failed" not in r.stdout
    assert "random or compressed" in r.stdout
    assert not (out / "broken.srt").exists()


def completed_jobs(server: LiveServer) -> float:
    families = text_string_to_metric_families(httpx.get(server.base_url + "/metrics").text)
    jobs = next(f for f in families if f.name == "asr_job_duration_seconds")
    ends = [s for s in jobs.samples if s.name.endswith("_count")]
    return sum(s.value for s in ends if s.labels["status"] == "completed")


def test_server_mode_says_when_no_server_answers(tmp_path: Path) -> None:
    r = run_cli(CLIP.path, "--server", f"http://127.0.0.1:{free_port()}", "--out", tmp_path, timeout_s=60)
    assert r.returncode == 1
    assert "cannot start" in r.stderr
    assert not list(tmp_path.iterdir())


def test_bad_arguments_stop_before_any_file(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "-f", "srt,docx").returncode == 2
    bad = run_cli(CLIP.path, "--num-speakers", "0", "--out", tmp_path)
    assert bad.returncode == 2 and "num_speakers" in bad.stderr
    empty = run_cli(tmp_path)  # a folder with no recordings
    assert empty.returncode == 2 and "no audio or video files" in empty.stderr
    assert not os.listdir(tmp_path)
