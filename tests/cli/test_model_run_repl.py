"""`model run` with files and settings, driven as a user drives it (a pseudo-terminal), against
a real server with SmolLM2: @file inclusion, /set num_ctx, and images for a model that has no
multimodal projector."""

import json
import re
import sys

import httpx
import openai
import pexpect
import pytest

from modelrunner.testing import Server

from terminal_text import strip_ansi

MODEL = "ai/smollm2"
PROMPT = re.compile(r"\n(?:\x1b\[[0-9;?]*[a-zA-Z])*> ")
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture(scope="module")
def own_server(tmp_path_factory, smollm2):
    srv = Server(tmp_path_factory.mktemp("run-repl") / "models").start()
    srv.package(smollm2, MODEL)
    yield srv
    srv.stop()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("The secret word is pumpernickel.")
    (tmp_path / "cat.png").write_bytes(PNG)
    return tmp_path


def spawn(server, cwd, *args):
    return pexpect.spawn(sys.executable, ["-m", "modelrunner.cli", "run", MODEL, *args],
                         env={**server.env, "TERM": "dumb", "COLUMNS": "200", "LINES": "40"},
                         cwd=str(cwd), encoding="utf-8", timeout=300, dimensions=(40, 200))


def sent_bodies(output):
    """The chat requests `--debug` printed (``> POST url {json}``)."""
    bodies = []
    for line in strip_ansi(output).splitlines():
        if line.startswith("> POST ") and "{" in line:
            bodies.append(json.loads(line[line.index("{"):]))
    return bodies


def test_an_at_file_is_sent_as_its_text(own_server, workdir):
    result = own_server.model("run", MODEL, "--debug", "--max-tokens", "4",
                              f"What is the secret word in @{workdir / 'notes.txt'}", input="")
    [body] = sent_bodies(result.stderr)
    assert body["messages"][-1]["content"] == \
        "What is the secret word in The secret word is pumpernickel."
    missing = own_server.model("run", MODEL, "Summarise @nope.txt", input="", check=False)
    assert missing.returncode == 1 and "@nope.txt: no such file" in missing.stderr


def test_set_num_ctx_applies_to_the_next_requests_of_the_session_only(own_server, workdir):
    child = spawn(own_server, workdir, "--max-tokens", "4")
    child.expect("Interactive chat mode started")
    child.expect("> ")
    child.sendline("/set num_ctx 1024")
    child.expect("Set context size to 1024 tokens.")
    child.expect("> ")
    child.sendline("Say hi.")
    child.expect(PROMPT)
    [runner] = [r for r in httpx.get(own_server.url + "/engines/ps", timeout=30).json()
                if r["model_name"].endswith("smollm2:latest")]
    assert runner["context_size"] == 1024
    # not written: `model configure show` still has nothing, a restart forgets it
    assert httpx.get(own_server.url + "/engines/_configure", timeout=30).json() == []
    child.sendline("/set num_ctx lots")
    child.expect("Usage: /set num_ctx <tokens>")
    child.sendline("/bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_an_image_for_a_model_without_projector_is_refused_clearly(own_server, workdir):
    child = spawn(own_server, workdir, "--debug", "--max-tokens", "4")
    child.expect("> ")
    child.sendline("What is in ./cat.png ?")
    child.expect("Error: model ai/smollm2 does not support images: it has no multimodal projector")
    [body] = sent_bodies(child.before)
    child.expect("> ")
    text, image = body["messages"][-1]["content"]
    assert text == {"type": "text", "text": "What is in ?"}
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    child.sendline("And ./nowhere.jpg ?")
    child.expect("Error: ./nowhere.jpg: no such image file")
    child.expect("> ")
    # the refused turn is not in the history: the next chat works
    child.sendline("Say hi.")
    child.expect(r"> POST \S+ (\{[^\r\n]*\})")
    assert json.loads(child.match.group(1))["messages"] == [{"role": "user", "content": "Say hi."}]
    child.expect(PROMPT)
    child.sendline("/bye")
    child.expect(pexpect.EOF)


def test_the_openai_client_gets_a_400_for_images_to_a_text_only_gguf(own_server):
    client = openai.OpenAI(base_url=own_server.url + "/engines/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="no multimodal projector"):
        client.chat.completions.create(model=MODEL, max_tokens=4, messages=[{
            "role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
