"""The web UI's Transcribe view (plugins/web) with a real Chromium: an uploaded file, and a
recording from the microphone (Chromium's fake capture device playing espeak-ng's speech)."""

import shutil

import pytest

from plugins.whisper.tests.conftest import MODEL, SENTENCE, word_error_rate

pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright")


@pytest.fixture(scope="module")
def page(speech):
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={speech}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=args)
        context = browser.new_context()
        context.grant_permissions(["microphone"])
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        yield page
        browser.close()


def test_an_uploaded_file_is_transcribed_in_the_page(whisper_server, page, speech):
    page.goto(whisper_server.url + "/ui/#transcribe")
    page.get_by_label("Model").select_option(MODEL)
    page.get_by_label("Audio file").set_input_files(str(speech))
    page.get_by_role("button", name="Transcribe").click()
    result = page.locator("#tr-result")
    result.wait_for(state="visible", timeout=60_000)
    assert word_error_rate(SENTENCE, result.text_content()) <= 0.2, result.text_content()
    assert page.errors == []


def test_a_recording_from_the_microphone_is_transcribed(whisper_server, page):
    page.goto(whisper_server.url + "/ui/#transcribe")
    page.get_by_role("button", name="Record").click()
    page.wait_for_timeout(7_000)   # the fake microphone plays the 6.7 s sentence
    page.get_by_role("button", name="Stop recording").click()
    result = page.locator("#tr-result")
    result.wait_for(state="visible", timeout=60_000)
    # a bound, as for the upload: after the other test files' requests tiny.en heard "round" or
    # "ground" for "brown" here (1 word of 15), at HEAD before the hostile-upload fixes too
    assert word_error_rate(SENTENCE, result.text_content()) <= 0.2, result.text_content()
    assert page.errors == []
