"""A chat cannot make a runner fetch a URL in any spelling llama-server reads.

llama-server downloads ``http...`` values of an ``image_url`` part, and of ``input_audio``,
``input_video`` and ``video_url`` parts (their ``data`` or ``url``). Before: the gateway looked
for image parts only, and only when the body's bytes held ``"image_url"`` or ``"input_image"``
as written, so ``"type": "input_audio"`` with ``"data": "http://..."``, or an ``image_url`` part
whose key is spelled with a JSON escape (``"image\\u005furl"``, the same key once parsed), went
to the runner, which fetched the address from the server's machine.
"""

import httpx
import pytest

from modelrunner.testing.tiny_gguf import write_tiny_llama_gguf
from tests.core.test_hostile_input import _Listener

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def vision_model(server, tmp_path_factory):
    """A model the store says reads images (a projector layer), so the checks get past the
    projector check; it never loads: the URL is refused before any runner is asked."""
    folder = tmp_path_factory.mktemp("media")
    weights = write_tiny_llama_gguf(folder / "model.gguf")
    projector = write_tiny_llama_gguf(folder / "mmproj.gguf", seed=2)
    server.package(weights, "evil/media", "--mmproj", str(projector))
    return "evil/media"


@pytest.fixture
def listener():
    listening = _Listener()
    yield listening
    listening.close()


def _chat(server, raw_body):
    return httpx.post(server.url + "/v1/chat/completions", headers=JSON, content=raw_body,
                      timeout=120)


def _refused(resp):
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and "data: URLs" in error["message"]


@pytest.mark.parametrize("part", [
    '{"type": "input_audio", "input_audio": {"data": "%s", "format": "wav"}}',
    '{"type": "input_audio", "input_audio": {"url": "%s"}}',
    '{"type": "input_video", "input_video": {"url": "%s"}}',
    '{"type": "video_url", "video_url": {"url": "%s"}}',
    '{"type": "audio_url", "audio_url": {"url": "%s"}}',  # vLLM's own audio part
    '{"type": "image\\u005furl", "image\\u005furl": {"url": "%s"}}',
    '{"t\\u0079pe": "image_url", "image_url": {"\\u0075rl": "%s"}}',
], ids=["audio-data", "audio-url", "video", "video_url", "audio_url", "escaped-image_url",
        "escaped-url"])
def test_a_chat_cannot_make_the_runner_fetch_audio_video_or_escaped_image_urls(
        server, vision_model, listener, part):
    body = ('{"model": "%s", "max_tokens": 4, "messages": [{"role": "user", "content": ['
            '{"type": "text", "text": "what is this?"}, ' % vision_model
            + part % listener.url + ']}]}')
    _refused(_chat(server, body.encode()))
    assert listener.hits == []


def test_inline_base64_audio_is_not_mistaken_for_a_url(server):
    # OpenAI's input_audio.data is raw base64 (no data: prefix): it passes the URL check and
    # reaches the model's own check (SmolLM2 reads no audio: not the URL refusal)
    body = ('{"model": "ai/smollm2", "max_tokens": 4, "messages": [{"role": "user", "content": ['
            '{"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", '
            '"format": "wav"}}]}]}')
    resp = _chat(server, body.encode())
    assert "data: URLs" not in resp.text
