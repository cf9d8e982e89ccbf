"""Live transcription as users run it, against the real server and model: openai-python's realtime
client (in its own venv), and the web page in headless Chromium with a fake microphone playing real
speech from ``../shared/eval``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr
from playwright.sync_api import Browser, sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, open_page
from tests.support.client_venvs import ensure_client_python
from tests.support.evalset import clips, normalize, wer
from tests.support.harness import REPO, LiveServer

# One sentence of 15 s: time for several partial decodes while it is spoken.
CLIP = next(c for c in clips("short") if c.id == "ls-test-other-1688-142285-0000")
SHORT = next(c for c in clips("short") if c.id == "ls-test-other-1688-142285-0003")
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def speech_wav(path: Path, rate: int, lead_s: float, tail_s: float) -> Path:
    """The clip as 16-bit mono WAV at ``rate``, with silence before and after."""
    samples, source_rate = sf.read(CLIP.path, dtype="float32")
    samples = soxr.resample(samples, source_rate, rate).astype(np.float32)
    padded = np.concatenate(
        [np.zeros(int(lead_s * rate), np.float32), samples, np.zeros(int(tail_s * rate), np.float32)]
    )
    sf.write(path, padded, rate, subtype="PCM_16")
    return path


def run_realtime_client(server: LiveServer, wav: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [
            str(ensure_client_python("air-current")),
            str(REPO / "tests/clients/openai_realtime.py"),
            str(wav),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ASR_TEST_BASE_URL": server.base_url, "ASR_TEST_API_KEY": server.api_key},
        cwd=REPO,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, proc.stderr[-4000:]
    out: dict[str, Any] = json.loads(lines[-1])
    assert proc.returncode == 0 and out["error"] is None, (out["error"], proc.stderr[-4000:])
    return out


def test_openai_realtime_client_transcribes_speech_live(live_server: LiveServer, tmp_path: Path) -> None:
    wav = speech_wav(tmp_path / "speech24.wav", 24000, lead_s=0.5, tail_s=1.5)
    out = run_realtime_client(live_server, wav, "--speed", "1")
    events = out["events"]
    kinds = [e["event"]["type"] for e in events]
    # The SDK parsed every event into its own type (not a fallback object).
    classes = {e["event"]["type"]: e["class"] for e in events}
    assert classes["session.created"] == "SessionCreatedEvent"
    assert classes[DELTA] == "ConversationItemInputAudioTranscriptionDeltaEvent"
    assert classes[COMPLETED] == "ConversationItemInputAudioTranscriptionCompletedEvent"
    assert kinds[:3] == ["session.created", "session.updated", "input_audio_buffer.speech_started"]
    completed = [e["event"] for e in events if e["event"]["type"] == COMPLETED]
    transcript = " ".join(c["transcript"] for c in completed)
    assert wer([CLIP.text], [transcript]) < 0.25, transcript
    captions = []
    for done in completed:
        deltas = [
            e["event"]["delta"]
            for e in events
            if e["event"]["type"] == DELTA and e["event"]["item_id"] == done["item_id"]
        ]
        # append-only: each delta adds words after the last
        assert all(d.startswith(" ") for d in deltas[1:]) and not "".join(deltas).startswith(" "), deltas
        captions.append("".join(deltas))
        assert done["usage"]["type"] == "duration" and done["usage"]["seconds"] > 0
    # The caption the deltas built is close to the final decode's transcript that replaces it.
    assert wer([transcript], [" ".join(captions)]) < 0.3, (captions, transcript)
    # Live: words arrived while the person was still speaking.
    first_stop = kinds.index("input_audio_buffer.speech_stopped")
    assert DELTA in kinds[:first_stop], kinds


def test_openai_realtime_client_manual_commit_with_logprobs(live_server: LiveServer, tmp_path: Path) -> None:
    samples, rate = sf.read(SHORT.path, dtype="int16")
    sf.write(tmp_path / "short16.wav", samples, rate, subtype="PCM_16")
    out = run_realtime_client(live_server, tmp_path / "short16.wav", "--speed", "0", "--manual", "--logprobs")
    kinds = [e["event"]["type"] for e in out["events"]]
    assert "input_audio_buffer.speech_started" not in kinds
    done = next(e["event"] for e in out["events"] if e["event"]["type"] == COMPLETED)
    assert wer([SHORT.text], [done["transcript"]]) < 0.25, done
    assert done["logprobs"] and all(lp["logprob"] <= 0 for lp in done["logprobs"])


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Chromium whose microphone plays the clip once (then silence: the fake device loops its file)."""
    mic = speech_wav(tmp_path_factory.mktemp("mic") / "mic.wav", 16000, lead_s=1.0, tail_s=60.0)
    fake_mic = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}",
    ]
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + fake_mic)
        yield launched
        launched.close()


def test_page_microphone_shows_the_spoken_words_live(browser: Browser, live_server: LiveServer) -> None:
    page = open_page(browser, live_server)
    page.click("#mic")
    started = time.monotonic()
    partials: list[str] = []  # what the page showed as not yet final
    final, settled = "", started
    while time.monotonic() - started < 150:
        partial, shown = page.inner_text("#partial").strip(), page.inner_text("#finals").strip()
        if partial and (not partials or partials[-1] != partial):
            partials.append(partial)
        if shown != final or partial:
            final, settled = shown, time.monotonic()
        # done once the clip has played and the text has not changed for 2 s
        if final and time.monotonic() - started > CLIP.duration_s + 2 and time.monotonic() - settled > 2:
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError(f"no settled transcript after 150 s: {final!r}, {page.inner_text('#status')}")
    assert partials, "no partial transcript was shown before the final one"
    live = [w for p in partials for w in normalize(p).split()]
    spoken = set(normalize(CLIP.text).split())
    assert sum(w in spoken for w in live) >= 0.75 * len(live), partials  # the spoken words, live
    assert wer([CLIP.text], [final]) < 0.25, final
    page.click("#mic")
    page.close()
