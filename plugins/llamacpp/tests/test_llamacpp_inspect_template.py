"""`model inspect`, `model show` and GET /models/{ref} say which chat template a GGUF model's
chat runner would use, and why, before anything is loaded: the llama.cpp engine answers the
core's Engine.model_details, the core puts it under "details" beside DMR's id, tags, created and
config. A real `model serve` on SmolLM2 and on SmolLM2 stripped of its template; no runner
starts."""

import json

import httpx
import pytest

from modelrunner.testing import Server
from plugins.llamacpp.tests.llamacpp_helpers import write_without_chat_template

FALLBACK = ("built-in chatml: the GGUF has none; llama architecture, its vocabulary has "
            "<|im_start|>")


@pytest.fixture(scope="module")
def srv(tmp_path_factory, smollm2):
    """ai/bare: SmolLM2 without tokenizer.chat_template; ai/smollm2 as published."""
    root = tmp_path_factory.mktemp("inspect-template")
    bare = write_without_chat_template(smollm2, root / "bare.gguf")
    template = root / "mine.jinja"
    template.write_text("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
                        "<|im_end|>\n{% endfor %}<|im_start|>assistant\n")
    with Server(root / "models") as server:
        server.package(bare, "ai/bare")
        server.package(bare, "ai/bare-packaged", "--chat-template", str(template))
        server.package(smollm2, "ai/smollm2")
        server.template = template
        yield server


def inspect(server, model):
    return json.loads(server.model("inspect", model).stdout)


def test_a_gguf_without_a_template_is_inspected_with_its_fallback_and_why(srv):
    assert inspect(srv, "ai/bare")["details"] == {"chat_template": FALLBACK}
    assert f"Chat template: {FALLBACK}" in srv.model("show", "ai/bare").stdout


def test_smollm2_is_inspected_with_its_own_template(srv):
    assert inspect(srv, "ai/smollm2")["details"] == {"chat_template": "embedded in the GGUF"}
    shown = srv.model("show", "ai/smollm2").stdout
    assert "Chat template: embedded in the GGUF" in shown and "GGUF Metadata:" in shown


def test_a_packaged_template_file_wins_over_the_fallback(srv):
    assert inspect(srv, "ai/bare-packaged")["details"] == {
        "chat_template": "packaged with the model"}


def test_a_configured_template_is_what_inspect_says_runs(srv):
    try:
        srv.model("configure", "ai/bare", "--chat-template", "gemma")
        assert inspect(srv, "ai/bare")["details"]["chat_template"] == "built-in gemma, configured"
        srv.model("configure", "ai/bare", "--chat-template", str(srv.template))
        assert inspect(srv, "ai/bare")["details"]["chat_template"] == "configured template text"
        srv.model("configure", "ai/bare", "--chat-template", "auto")
        assert inspect(srv, "ai/bare")["details"]["chat_template"] == FALLBACK
    finally:
        srv.model("configure", "ai/bare", "--chat-template", "auto")
    assert httpx.get(srv.url + "/engines/ps").json() == []  # inspecting loaded nothing


def test_dmr_clients_see_the_shape_they_always_saw(srv):
    """id, tags, created and config are what GET /models lists; "details" is only added."""
    answer = httpx.get(srv.url + "/models/ai/bare").json()
    [listed] = [m for m in httpx.get(srv.url + "/models").json() if m["id"] == answer["id"]]
    assert set(answer) == set(listed) | {"details"}
    assert {k: answer[k] for k in listed} == listed
