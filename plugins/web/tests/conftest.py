"""Fixtures for the web UI tests: a real Chromium (Debian's, driven by Playwright) on the session
server's /ui/, plus the tiny Stable Diffusion pipeline and the test registry."""

import shutil

import pytest

from plugins.diffusers.tests.conftest import tiny_sd_dir, tiny_sd_files  # noqa: F401 (fixtures)


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# module-scoped: Playwright's sync API allows one instance at a time in a process, and other
# plugins' browser tests (plugins/whisper) open their own after these
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, tmp_path):
    """A fresh page (its own storage) at 1440 px; screenshots go to the test's tmp_path. Any
    script error or console error fails the test: the page must run clean under its CSP."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.shot = lambda name: page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    yield page
    context.close()
