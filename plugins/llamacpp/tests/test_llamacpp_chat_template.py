"""A GGUF without a chat template, served by a real `model serve` and llama-server on SmolLM2's
weights: it gets its format's built-in template, stops at its end of turn, `model ps` says which
template runs and why, and `model configure --chat-template` chooses another."""

import json
from pathlib import Path

import httpx
import openai
import pytest

from modelrunner.testing import Server
from plugins.llamacpp.tests.llamacpp_helpers import write_without_chat_template


@pytest.fixture(scope="module")
def srv(tmp_path_factory, smollm2, llama_server):
    """A server with SmolLM2 stripped of its template as ai/bare, and SmolLM2 itself."""
    root = tmp_path_factory.mktemp("bare")
    bare = write_without_chat_template(smollm2, root / "bare.gguf")
    with Server(root / "models") as server:
        server.package(bare, "ai/bare")
        server.package(smollm2, "ai/smollm2")
        yield server


def chat(server, model, content="What is the capital of France?"):
    client = openai.OpenAI(base_url=server.url + "/engines/v1", api_key="none")
    return client.chat.completions.create(
        model=model, temperature=0, max_tokens=200,
        messages=[{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": content}])


def test_a_gguf_without_a_template_answers_in_its_own_format_and_stops(srv):
    answer = chat(srv, "ai/bare")
    choice = answer.choices[0]
    assert "Paris" in choice.message.content, choice.message.content
    assert choice.finish_reason == "stop"  # at <|im_end|>, not max_tokens
    assert "<|im_start|>" not in choice.message.content
    assert "<|im_end|>" not in choice.message.content
    assert answer.usage.completion_tokens < 200
    ps = srv.model("ps").stdout
    assert ("bare: chat template: built-in chatml: the GGUF has none; llama architecture, "
            "its vocabulary has <|im_start|>") in ps, ps
    [runner] = [r for r in httpx.get(srv.url + "/engines/ps").json()
                if r["model_name"].endswith("ai/bare:latest")]
    assert runner["details"]["chat_template"].startswith("built-in chatml")
    assert "--chat-template" in srv.runner_argv("ai/bare")


def test_a_gguf_with_its_template_says_so(srv):
    argv = srv.runner_argv("ai/smollm2")
    assert "--chat-template" not in argv and "--jinja" in argv
    assert "smollm2: chat template: embedded in the GGUF" in srv.model("ps").stdout


def test_configure_chooses_a_built_in_template_by_name(srv):
    srv.model("configure", "ai/smollm2", "--chat-template", "chatml")
    argv = srv.runner_argv("ai/smollm2")
    assert argv[argv.index("--chat-template") + 1] == "chatml"
    assert "smollm2: chat template: built-in chatml, configured" in srv.model("ps").stdout
    assert chat(srv, "ai/smollm2").choices[0].finish_reason == "stop"
    # and as a runtime flag, as DMR's `configure -- FLAGS` passes it
    srv.model("configure", "ai/smollm2", "--chat-template", "auto", "--", "--chat-template",
              "llama2")
    argv = srv.runner_argv("ai/smollm2")
    assert argv[argv.index("--chat-template") + 1] == "llama2" and "--no-jinja" in argv
    srv.model("configure", "ai/smollm2", "--chat-template", "auto", "--", "--seed", "1")
    assert "--chat-template" not in srv.runner_argv("ai/smollm2")  # the GGUF's own again


def test_a_bogus_template_name_is_refused(srv):
    result = srv.model("configure", "ai/smollm2", "--chat-template", "gemma-7", check=False)
    assert result.returncode != 0
    assert "not one of llama.cpp's built-in templates" in result.stderr + result.stdout
    for body in ({"llamacpp": {"chat-template": "gemma-7"}},
                 {"runtime-flags": ["--chat-template", "{{ messages }}"]}):
        response = httpx.post(srv.url + "/engines/_configure",
                              json={"model": "ai/smollm2", **body})
        assert response.status_code == 400, response.text
        assert "not one of llama.cpp's built-in templates" in response.text  # DMR: plain text


def test_configure_sends_a_template_files_text_not_its_path(srv, tmp_path):
    template = Path(tmp_path / "mine.jinja")
    template.write_text("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
                        "<|im_end|>\n{% endfor %}<|im_start|>assistant\n")
    srv.model("configure", "ai/bare", "--chat-template", str(template))
    stored = json.loads(srv.model("configure", "show", "ai/bare").stdout)
    assert stored[0]["Config"]["extra"]["llamacpp"]["chat-template"] == template.read_text()
    argv = srv.runner_argv("ai/bare")
    assert str(template) not in " ".join(argv) and "--chat-template" not in argv
    [runner] = [r for r in httpx.get(srv.url + "/engines/ps").json()
                if r["model_name"].endswith("ai/bare:latest")]
    environ = Path(f"/proc/{runner['pid']}/environ").read_bytes().split(b"\0")
    assert f"LLAMA_ARG_CHAT_TEMPLATE={template.read_text()}".encode() in environ
    assert "bare: chat template: configured template text" in srv.model("ps").stdout
    assert chat(srv, "ai/bare").choices[0].finish_reason == "stop"
    srv.model("configure", "ai/bare", "--chat-template", "auto")
