"""Headless Chromium for the page's tests: the system's browser, launched as root, no network."""

from __future__ import annotations

from playwright.sync_api import Browser, Page

from tests.support.harness import LiveServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-sandbox",  # as root
]


def open_page(browser: Browser, server: LiveServer, width: int = 390, height: int = 844) -> Page:
    """The page on a phone's screen (by default), once it has listed the models."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(server.base_url + "/")
    page.wait_for_function("document.querySelector('#model').options.length > 0")
    return page
