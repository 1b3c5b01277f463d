"""A hostile client's JSON or GGUF gets a 400 in its own dialect, never a 500 or a traceback; and
no answer or error names a path of the server's machine.

Nesting: CPython's json raises RecursionError below ~1000 levels, so `[` x 200,000 was a 500 on
every JSON route, and a GGUF whose metadata nests arrays 5000 deep was a 500 from /api/create and
a traceback from `model package`. Bodies are capped at 64 levels (modelrunner.bodies), GGUF
metadata arrays at 8 (packaging/gguf_metadata.py).

Paths: llama-server named its model by its --model path, so every chat completion's `model` was
the absolute path of a GGUF file in the store; a failed load's error carried llama-server's
command line and log.
"""

import hashlib
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from modelrunner.testing import Server
from modelrunner.testing.crafted import nested_array_gguf
from modelrunner.testing.tiny_gguf import write_tiny_llama_gguf

JSON = {"Content-Type": "application/json"}


def nested(depth):
    return b"[" * depth + b"]" * depth


def openai_shape(response):
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error["message"]


def ollama_shape(response):
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


def anthropic_shape(response):
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    return body["error"]["message"]


def dmr_shape(response):
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


# (route, the JSON members before the nested one, the dialect's error shape)
ROUTES = [
    ("/v1/chat/completions", b'"model": "ai/smollm2", "messages"', openai_shape),
    ("/engines/v1/completions", b'"model": "ai/smollm2", "prompt"', openai_shape),
    ("/v1/embeddings", b'"model": "ai/smollm2", "input"', openai_shape),
    ("/v1/responses", b'"model": "ai/smollm2", "input"', openai_shape),
    ("/api/chat", b'"model": "ai/smollm2", "messages"', ollama_shape),
    ("/api/generate", b'"model": "ai/smollm2", "prompt"', ollama_shape),
    ("/api/create", b'"model": "evil/model", "files"', ollama_shape),
    ("/v1/messages", b'"model": "ai/smollm2", "max_tokens": 8, "messages"', anthropic_shape),
    ("/anthropic/v1/messages/count_tokens", b'"model": "ai/smollm2", "messages"',
     anthropic_shape),
    ("/models/create", b'"from"', dmr_shape),
    ("/engines/_configure", b'"model": "ai/smollm2", "runtime-flags"', dmr_shape),
    ("/models/fsck", b'"repair"', dmr_shape),
]


@pytest.mark.parametrize("route, members, shape", ROUTES, ids=[r[0] for r in ROUTES])
@pytest.mark.parametrize("depth", [1000, 200_000])
def test_deeply_nested_json_is_a_400_in_the_routes_dialect(server, route, members, shape, depth):
    body = b"{" + members + b": " + nested(depth) + b"}"
    response = httpx.post(server.url + route, content=body, headers=JSON, timeout=30)
    assert response.status_code == 400, response.text[:500]
    assert "nested deeper than 64 levels" in shape(response)


@pytest.mark.parametrize("route, members, shape", ROUTES, ids=[r[0] for r in ROUTES])
def test_two_hundred_thousand_open_brackets_are_a_400(server, route, members, shape):
    response = httpx.post(server.url + route, content=b"[" * 200_000, headers=JSON, timeout=30)
    assert response.status_code == 400, response.text[:500]
    assert "invalid JSON body" in shape(response)


def test_json_inside_a_string_is_capped_too(server):
    """Ollama's `format` may be a JSON schema written as a string: parsed by the same cap."""
    response = httpx.post(server.url + "/api/generate", headers=JSON, timeout=30, json={
        "model": "ai/smollm2", "prompt": "hi", "stream": False,
        "format": nested(5000).decode()})
    assert response.status_code == 400, response.text[:500]
    assert "invalid format" in ollama_shape(response)


def test_a_real_requests_nesting_is_well_inside_the_cap(server):
    deep = {"type": "object", "properties": {}}
    schema = deep
    for _ in range(25):  # 25 levels of objects: ~50 levels of body, OpenAI allows 10
        schema["properties"]["inner"] = {"type": "object", "properties": {}}
        schema = schema["properties"]["inner"]
    response = httpx.post(server.url + "/v1/chat/completions", timeout=30, json={
        "model": "no/such-model", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": deep}}})
    assert response.status_code == 404, response.text  # past the body check, to the model lookup


# -- GGUF metadata ----------------------------------------------------------------------------


def test_api_create_refuses_a_gguf_whose_metadata_arrays_nest_5000_deep(server):
    data = nested_array_gguf(5000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=data).status_code == 201
    response = httpx.post(server.url + "/api/create", timeout=60, json={
        "model": "evil/nested", "files": {"nested.gguf": digest}, "stream": False})
    assert response.status_code == 400, response.text
    message = ollama_shape(response)
    assert "nested.gguf" in message and "nested deeper than 8 levels" in message
    assert str(server.models_path) not in message and "/blobs/" not in message.split("<store>")[0]
    assert "evil/nested" not in server.model("ls").stdout


def test_model_package_refuses_a_nested_gguf_with_one_clear_line(server, tmp_path):
    path = tmp_path / "nested.gguf"
    path.write_bytes(nested_array_gguf(5000))
    result = server.model("package", "--gguf", str(path), "evil/nested", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "nested deeper than 8 levels" in result.stderr


# -- no path of the machine in answers and errors ---------------------------------------------


def write_unloadable_gguf(path):
    """The tiny GGUF with its header saying feed_forward_length 96 while its FFN tensors are 128
    wide: packaging accepts it, llama.cpp refuses to load it (and its log names the file)."""
    write_tiny_llama_gguf(path, n_ff=128)
    data = bytearray(Path(path).read_bytes())
    key = b"llama.feed_forward_length"
    at = data.index(key) + len(key) + 4  # after the UINT32 type
    data[at:at + 4] = (96).to_bytes(4, "little")
    Path(path).write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def own_server(tmp_path_factory, smollm2):
    """A server of this module's own: a tag alias and a broken model change its store."""
    root = tmp_path_factory.mktemp("paths")
    srv = Server(root / "models").start()
    srv.package(smollm2, "ai/smollm2")
    srv.model("tag", "ai/smollm2", "my/alias:v1")
    srv.package(write_unloadable_gguf(root / "broken.gguf"), "ai/broken")
    yield srv
    srv.stop()


@pytest.mark.parametrize("name", ["ai/smollm2", "smollm2", "ai/smollm2:latest", "my/alias:v1"])
def test_an_answer_names_the_model_as_the_client_asked(own_server, name):
    client = openai.OpenAI(base_url=own_server.url + "/engines/v1", api_key="none")
    chat = client.chat.completions.create(
        model=name, max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    assert chat.model == name
    chunks = list(client.chat.completions.create(
        model=name, max_tokens=2, stream=True, messages=[{"role": "user", "content": "Hi"}]))
    assert chunks and {chunk.model for chunk in chunks} == {name}
    completion = client.completions.create(model=name, prompt="Hello", max_tokens=2)
    assert completion.model == name
    for answer in (chat.model_dump_json(), completion.model_dump_json(),
                   *(c.model_dump_json() for c in chunks)):
        assert str(own_server.models_path) not in answer and ".gguf" not in answer


def test_a_failed_load_names_no_path_in_any_dialect(own_server):
    store = str(own_server.models_path)
    with pytest.raises(openai.InternalServerError) as failed:
        openai.OpenAI(base_url=own_server.url + "/v1", api_key="none").chat.completions.create(
            model="ai/broken", max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    message = failed.value.body["message"]
    assert "unable to load runner" in message and "wrong shape" in message  # the reason stays
    assert store not in message and "/tmp/" not in message and "<store>/bundles/" in message

    ollama = httpx.post(own_server.url + "/api/chat", timeout=120, json={
        "model": "ai/broken", "stream": False, "messages": [{"role": "user", "content": "Hi"}]})
    assert ollama.status_code == 500 and "wrong shape" in ollama_shape(ollama)
    assert store not in ollama.text and "/tmp/" not in ollama.text

    with pytest.raises(anthropic.APIStatusError) as failed:
        anthropic.Anthropic(base_url=own_server.url, api_key="none").messages.create(
            model="ai/broken", max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    assert failed.value.status_code == 500
    assert "wrong shape" in str(failed.value.body)
    assert store not in str(failed.value.body) and "/tmp/" not in str(failed.value.body)


def test_an_error_keeps_urls_routes_and_names_but_no_machine_path(tmp_path):
    from modelrunner.machine_paths import add_root, hide_paths

    add_root(tmp_path / "models")
    message = (f"loading ai/x: {Path.home()}/.venv/bin/llama-server --model "
               f"{tmp_path}/models/bundles/sha256/ab/model/model.gguf --host unix:///tmp/r/0.sock; "
               "[Errno 2] No such file: '/usr/lib/libcuda.so.1'; see http://127.0.0.1:12434/v1/models"
               " or POST /models/create with hf.co/org/repo:Q4_K_M")
    public = hide_paths(message)
    assert public == ("loading ai/x: …/llama-server --model <store>/bundles/sha256/ab/model/model.gguf"
                      " --host unix://…/0.sock; [Errno 2] No such file: '…/libcuda.so.1'; see "
                      "http://127.0.0.1:12434/v1/models or POST /models/create with "
                      "hf.co/org/repo:Q4_K_M")


# -- images a runner would fetch, and numbers that are not JSON ---------------------------------


@pytest.fixture(scope="module")
def vision_model(server, tmp_path_factory):
    """A model the store says reads images (a projector layer), so the image checks get past
    the projector check; it never loads: the URL is refused before any runner is asked."""
    folder = tmp_path_factory.mktemp("vision")
    weights = write_tiny_llama_gguf(folder / "model.gguf")
    projector = write_tiny_llama_gguf(folder / "mmproj.gguf", seed=1)
    server.package(weights, "evil/vision", "--mmproj", str(projector))
    return "evil/vision"


class _Listener:
    """A local HTTP server that counts the requests it gets: the address a hostile image URL
    points the runner at."""

    def __init__(self):
        import http.server
        import threading
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/secret-admin-page"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_a_chat_cannot_make_the_runner_fetch_an_image_url(server, vision_model):
    listener = _Listener()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="none")
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=vision_model, max_tokens=4, messages=[
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": listener.url}}]}])
        assert "data: URLs" in str(refused.value)
        claude = anthropic.Anthropic(base_url=server.url + "/anthropic", api_key="none")
        with pytest.raises(anthropic.BadRequestError):
            claude.messages.create(model=vision_model, max_tokens=4, messages=[
                {"role": "user", "content": [
                    {"type": "image", "source": {"type": "url", "url": listener.url}},
                    {"type": "text", "text": "what is this?"}]}])
        with pytest.raises(openai.BadRequestError):
            client.responses.create(model=vision_model, max_output_tokens=16, input=[
                {"role": "user", "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": listener.url}]}])
        assert listener.hits == []
        ps = httpx.get(server.url + "/engines/ps", timeout=10).json()
        assert not [r for r in ps if "vision" in str(r)]  # refused before anything loaded
    finally:
        listener.close()


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_a_400_not_a_runner_500(server, constant):
    chat = httpx.post(server.url + "/v1/chat/completions", headers=JSON, timeout=30, content=(
        b'{"model": "ai/smollm2", "temperature": ' + constant +
        b', "messages": [{"role": "user", "content": "hi"}]}'))
    assert chat.status_code == 400, chat.text
    assert constant.lstrip(b"-").decode() in openai_shape(chat)
    ollama = httpx.post(server.url + "/api/chat", headers=JSON, timeout=30, content=(
        b'{"model": "ai/smollm2", "stream": false, "options": {"temperature": ' + constant +
        b'}, "messages": [{"role": "user", "content": "hi"}]}'))
    assert ollama.status_code == 400, ollama.text
    assert constant.lstrip(b"-").decode() in ollama_shape(ollama)
