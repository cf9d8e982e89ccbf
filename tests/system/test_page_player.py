"""The page as a transcript player, in headless Chromium against the real server and model: the
chosen file plays in the page, its transcript is segments with times (speakers in colour when asked
for), a click plays from that word, the word being played is highlighted, a long file's progress bar
advances while it streams, and German speech becomes English text."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import srt
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, open_page
from tests.support.evalset import clips, normalize, wer
from tests.support.harness import LiveServer

SHORT = next(c for c in clips("short") if c.id == "ls-test-other-1688-142285-0000")  # 15 s, 4 sentences
LONG = next(c for c in clips("long") if c.id == "long-ls-test-other-2033-164914-0000-0009")  # 97 s
TWO_SPEAKERS = next(c for c in clips("diarization") if c.id == "pyannote-sample")
GERMAN = next(c for c in clips("multilingual") if c.id == "fleurs-de-004")  # "die höhle befindet sich..."
DONE = "document.querySelector('#status').textContent === 'Done'"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def transcribe(page: Page, path: Path, *, speakers: bool = False) -> None:
    page.set_input_files("#file", str(path))
    page.wait_for_function("Number.isFinite(document.querySelector('#media').duration)")
    if speakers:
        page.check("#speakers")
    page.click("#transcribe")


def shown_words(page: Page) -> str:
    words = page.eval_on_selector_all("#transcript .word", "els => els.map(e => e.textContent)")
    return " ".join(words)


def test_the_file_plays_from_the_word_clicked(browser: Browser, live_server: LiveServer) -> None:
    page = open_page(browser, live_server)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    transcribe(page, SHORT.path)
    page.wait_for_function(DONE, timeout=120_000)
    assert wer([SHORT.text], [shown_words(page)]) < 0.25, shown_words(page)
    times = page.eval_on_selector_all("#transcript .segment .time", "els => els.map(e => e.textContent)")
    assert len(times) >= 2 and times[0].startswith("0:0") and times == sorted(times), times
    # The sixth word: its start time, then a click on it.
    word = page.locator("#transcript .word").nth(5)
    start = float(word.get_attribute("data-start") or "nan")
    assert 1.0 < start < SHORT.duration_s
    word.click()
    page.wait_for_timeout(300)
    position = float(page.evaluate("document.querySelector('#media').currentTime"))
    assert start - 0.05 <= position < start + 2.0, (start, position)
    current = page.locator("#transcript .word.current")
    assert current.count() == 1
    assert start - 0.05 <= float(current.get_attribute("data-start") or "nan") <= position + 0.05
    # A click on a segment plays from its start.
    segment = page.locator("#transcript .segment").nth(1)
    segment.locator(".time").click()
    page.wait_for_timeout(200)
    seg_start = float(segment.get_attribute("data-start") or "nan")
    position = float(page.evaluate("document.querySelector('#media').currentTime"))
    assert seg_start - 0.05 <= position < seg_start + 2.0, (seg_start, position)
    with page.expect_download() as download:
        page.click("[data-download=srt]")
    cues = list(srt.parse(Path(download.value.path()).read_text()))
    assert wer([SHORT.text], [" ".join(c.content for c in cues)]) < 0.25
    page.close()


def test_speakers_are_named_in_colour(browser: Browser, live_server: LiveServer) -> None:
    page = open_page(browser, live_server, width=1000, height=900)
    transcribe(page, TWO_SPEAKERS.path, speakers=True)
    page.wait_for_function(DONE, timeout=300_000)
    labels = page.eval_on_selector_all(
        "#transcript .speaker", "els => els.map(e => [e.textContent, getComputedStyle(e).color])"
    )
    colours = dict(labels)
    assert len(colours) >= 2, labels  # two people speak in it
    assert len(set(colours.values())) == len(colours), colours  # one colour per speaker
    page.close()


def test_a_long_file_shows_its_progress_while_it_streams(browser: Browser, live_server: LiveServer) -> None:
    page = open_page(browser, live_server, width=1000, height=900)
    transcribe(page, LONG.path)
    seen: list[float] = []
    deadline = time.monotonic() + 300
    while not page.evaluate(DONE):
        assert time.monotonic() < deadline, f"not done after 300 s; progress seen: {seen}"
        value = float(page.evaluate("document.querySelector('#progress-bar').value"))
        if not seen or value != seen[-1]:
            seen.append(value)
        page.wait_for_timeout(100)
    total = float(page.evaluate("document.querySelector('#progress-bar').max"))
    assert abs(total - LONG.duration_s) < 0.5
    during = [v for v in seen if 0 < v < total]
    assert len(during) >= 2 and during == sorted(during), seen  # it advanced in steps while streaming
    assert float(page.evaluate("document.querySelector('#progress-bar').value")) == total
    assert wer([LONG.text], [shown_words(page)]) < 0.3
    page.close()


def test_translate_to_english(browser: Browser, live_server: LiveServer) -> None:
    page = open_page(browser, live_server, width=1000, height=900)
    page.check("#translate")
    with page.expect_request("**/v1/audio/translations"):
        transcribe(page, GERMAN.path)
    page.wait_for_function(DONE, timeout=300_000)
    words = set(normalize(shown_words(page)).split())
    assert len(words & {"the", "of", "is", "a", "on", "cave"}) >= 2, words  # English...
    assert not words & {"die", "der", "und", "ist", "höhle", "befindet"}, words  # ...not the German said
    page.close()


def test_a_job_shows_its_progress_and_result_in_the_player(browser: Browser, live_server: LiveServer) -> None:
    page = open_page(browser, live_server, width=1000, height=900)
    page.set_input_files("#file", str(SHORT.path))
    page.wait_for_function("Number.isFinite(document.querySelector('#media').duration)")
    with page.expect_response("**/v1/audio/jobs") as submitted:
        page.click("#as-job")
    job = submitted.value.json()
    assert submitted.value.status == 202 and job["response_format"] == "verbose_json", job
    page.wait_for_function(DONE, timeout=120_000)
    bar = page.evaluate(
        "[document.querySelector('#progress-bar').value, document.querySelector('#progress-bar').max]"
    )
    assert abs(bar[1] - SHORT.duration_s) < 0.5 and bar[0] == bar[1], bar  # the job's total, all done
    assert page.locator("#job-progress").count() == 0  # the player's bar serves
    assert wer([SHORT.text], [shown_words(page)]) < 0.25, shown_words(page)
    times = page.eval_on_selector_all("#transcript .segment .time", "els => els.map(e => e.textContent)")
    assert len(times) >= 2 and times == sorted(times), times
    word = page.locator("#transcript .word").nth(5)
    start = float(word.get_attribute("data-start") or "nan")
    assert 1.0 < start < SHORT.duration_s
    word.click()
    page.wait_for_timeout(300)
    position = float(page.evaluate("document.querySelector('#media').currentTime"))
    assert start - 0.05 <= position < start + 2.0, (start, position)
    assert page.locator("#transcript .word.current").count() == 1
    with page.expect_download() as download:
        page.click("[data-download=verbose_json]")
    body = json.loads(Path(download.value.path()).read_text())
    assert body["text"] and len(body["words"]) == page.locator("#transcript .word").count()
    page.close()
