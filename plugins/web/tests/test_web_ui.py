"""The web UI in a real Chromium against a real server holding SmolLM2 (ai/smollm2): each test is
what a user does on the page. Screenshots of each view land in the test's tmp_path."""

import json
import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from modelrunner.testing import Server
from plugins.oci.tests.oci_registry import start_registry, stop_registry

SLOW = 120_000  # ms: SmolLM2 on a shared CPU


def open_view(page, server, view):
    page.goto(f"{server.url}/ui/#{view}")
    page.wait_for_load_state("domcontentloaded")


def test_a_browser_at_the_root_lands_on_the_models_view(page, server):
    page.goto(server.url + "/")
    assert page.url.endswith("/ui/")
    expect(page.locator("tr[data-model='ai/smollm2']")).to_be_visible()
    expect(page.locator("#disk-use")).to_contain_text("Disk use:")
    page.get_by_role("button", name="Details of ai/smollm2").click()
    expect(page.get_by_text("Chat template")).to_be_visible()
    page.shot("models")
    page.set_viewport_size({"width": 390, "height": 844})
    page.shot("models-390")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    assert not page.errors, page.errors


def test_a_pull_shows_progress_that_survives_a_reload_and_ends_in_the_list(
        page, server, tmp_path, smollm2):
    registry = start_registry(tmp_path / "registry")
    try:
        target = f"{registry.host}/team/smollm2:v1"
        server.model("tag", "ai/smollm2", target)
        server.model("push", target)
        server.model("rm", target)
        with Server(tmp_path / "fresh") as fresh:  # an empty store: every layer is fetched
            open_view(page, fresh, "models")
            page.get_by_label("Pull a model").fill(target)
            page.get_by_role("button", name="Pull", exact=True).click()
            pull = page.locator(f"article[data-ref='{target}']")
            expect(pull).to_be_visible()
            page.reload()  # the server remembers the pull; the page shows it again
            expect(pull).to_be_visible()
            expect(pull.locator(".badge")).to_have_text("success", timeout=SLOW)
            assert pull.locator("progress").count() >= 1  # per-layer progress
            done = pull.locator("progress").first
            assert done.get_attribute("value") == done.get_attribute("max")
            expect(page.locator("tr[data-model='127.0.0.1:%s/team/smollm2:v1'" % registry.host.split(":")[1]
                                + "]")).to_be_visible()
            page.shot("pull")
            assert not page.errors, page.errors
    finally:
        stop_registry(registry)


def chat_settings(page, max_tokens):
    page.get_by_text("System prompt and sampling").click()
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Max tokens").fill(str(max_tokens))


def test_a_chat_answer_streams_with_its_speed(page, server):
    open_view(page, server, "chat?model=ai/smollm2")
    chat_settings(page, 16)
    page.get_by_label("System prompt", exact=True).fill("You are a helpful assistant.")
    page.get_by_label("Message").fill("What is the capital city of France?")
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".message.assistant").last
    expect(answer.locator(".stats")).to_contain_text("tok/s", timeout=SLOW)
    assert "Paris" in answer.inner_text()
    page.shot("chat")
    assert not page.errors, page.errors


def test_model_output_renders_tables_and_never_runs_script(page, server):
    hostile = ("| city | country |\n|---|---|\n| Paris | France |\n\n"
               "<img src=x onerror=\"window.pwned=1\"> <script>window.pwned=2</script>\n\n"
               "[click](javascript:window.pwned=3) ![i](http://example.com/x.png)\n\n"
               "```python\nprint('<b>hi</b>')\n```")
    history = {"model": "ai/smollm2", "system": "", "settings": {"max_tokens": "8"},
               "messages": [{"role": "user", "content": "a table please"},
                            {"role": "assistant", "content": hostile}]}
    open_view(page, server, "models")
    page.evaluate("h => localStorage.setItem('modelrunner-chat', h)", json.dumps(history))
    open_view(page, server, "chat")
    answer = page.locator(".message.assistant").last
    expect(answer.locator("table td").first).to_have_text("Paris")
    expect(answer.locator("th").first).to_have_text("city")
    assert answer.locator("img, script, iframe, a[href^='javascript']").count() == 0
    expect(answer.locator("pre code")).to_have_text("print('<b>hi</b>')")
    expect(answer.get_by_role("button", name="Copy code")).to_be_visible()
    assert "<script>window.pwned=2</script>" in answer.inner_text()
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None
    page.shot("markdown")


def test_stop_frees_the_runners_slot(page, server):
    open_view(page, server, "chat?model=ai/smollm2")
    chat_settings(page, 400)
    page.get_by_label("Message").fill("Write a very long story about a lighthouse keeper.")
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".message.assistant").last
    expect(answer.locator(".markdown")).not_to_be_empty(timeout=SLOW)
    page.get_by_role("button", name="Stop").click()
    expect(answer.locator(".error")).to_have_text("Stopped.")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runners = httpx.get(server.url + "/engines/ps").json()
        if runners and not any(r["in_use"] for r in runners):
            break
        time.sleep(0.2)
    assert runners and not any(r["in_use"] for r in runners), runners


def test_the_request_inspector_shows_the_chat(page, server):
    open_view(page, server, "requests")
    # a chat this module had: the answer test's or the stop test's, whichever ran
    record = page.locator("details.record[data-model='ai/smollm2']",
                          has_text=re.compile("capital city of France|lighthouse")).first
    expect(record).to_be_visible(timeout=30_000)
    record.locator("summary").click()
    expect(record.locator("dd").nth(1)).not_to_be_empty()  # the response
    expect(record).to_contain_text("time to first token")
    expect(page.locator("#metrics figure").first).to_be_visible()
    page.get_by_label("Filter by model").fill("no-such-model")
    expect(page.locator("details.record")).to_have_count(0)
    page.shot("requests")
    open_view(page, server, "logs")
    expect(page.locator("#log-lines")).not_to_be_empty(timeout=30_000)
    page.shot("logs")


def test_an_image_model_shows_an_image(page, server, tiny_sd_dir):
    server.model("package", "--safetensors-dir", str(tiny_sd_dir), "ai/tiny-sd")
    open_view(page, server, "chat?model=ai/tiny-sd")
    expect(page.locator("#chat-note")).to_contain_text("generates images")
    page.get_by_label("Message").fill("a red square")
    page.get_by_role("button", name="Send").click()
    image = page.locator("img.generated")
    expect(image).to_be_visible(timeout=300_000)
    assert page.evaluate("i => i.naturalWidth", image.element_handle()) > 0
    page.shot("image")
    assert not page.errors, page.errors


def test_unload_empties_the_runners_view(page, server):
    httpx.post(server.url + "/engines/v1/chat/completions", timeout=300, json={  # load a runner
        "model": "ai/smollm2", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
    open_view(page, server, "runners")
    expect(page.locator("tr[data-runner]").first).to_be_visible(timeout=30_000)
    page.shot("runners")
    page.get_by_label("Keep alive").fill("soon")  # the API's validation, its words shown
    page.get_by_role("button", name="Save configuration").click()
    expect(page.locator("#cfg-result")).to_have_class("error")
    expect(page.locator("#cfg-result")).not_to_be_empty()
    while page.locator("tr[data-runner]").count():
        page.locator("tr[data-runner] button").first.click()
        page.wait_for_timeout(500)
    expect(page.locator("#no-runners")).to_be_visible(timeout=30_000)
    assert httpx.get(server.url + "/engines/ps").json() == []
