"""End to end: `model package` a tiny Stable Diffusion pipeline, generate through the server with
the official openai client, as DMR's /engines/v1/images/generations does."""

import base64
import io
import json
import subprocess
import sys

import httpx
import openai
import pytest
from PIL import Image

STEPS = {"num_inference_steps": 2}


def generate(client, model, seed=None, **kwargs):
    extra = dict(STEPS)
    if seed is not None:
        extra["seed"] = seed
    kwargs.setdefault("response_format", "b64_json")
    result = client.images.generate(model=model, prompt="a red cat", extra_body=extra, **kwargs)
    return [base64.b64decode(d.b64_json) for d in result.data]


def png(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_packaged_as_a_diffusers_model(server, image_model):
    info = json.loads(server.model("inspect", image_model).stdout)
    assert info["config"]["format"] == "diffusers"
    assert info["config"]["architecture"] == "StableDiffusionPipeline"
    status = httpx.get(server.url + "/engines/status", timeout=30).json()
    assert "diffusers" in status


def test_generate_default_size(openai_client, image_model):
    (data,) = generate(openai_client, image_model, seed=1)
    image = png(data)
    assert image.size == (64, 64)  # UNet sample size 32 x VAE scale factor 2
    assert image.mode == "RGB"


def test_same_seed_same_bytes_other_seed_differs(openai_client, image_model):
    a = generate(openai_client, image_model, seed=42)
    b = generate(openai_client, image_model, seed=42)
    c = generate(openai_client, image_model, seed=43)
    assert a == b
    assert a != c


def test_size_and_n(openai_client, image_model):
    images = generate(openai_client, image_model, seed=5, size="48x32", n=2)
    assert len(images) == 2
    assert [png(d).size for d in images] == [(48, 32), (48, 32)]
    assert images[0] != images[1]  # one generator, two different latents


def test_engine_in_path(server, image_model):
    client = openai.OpenAI(base_url=server.url + "/engines/diffusers/v1", api_key="x",
                           max_retries=0, timeout=600)
    (data,) = generate(client, image_model, seed=1)
    assert png(data).size == (64, 64)
    resp = httpx.post(server.url + "/v1/images/generations", timeout=600,
                      json={"model": image_model, "prompt": "a red cat", "seed": 1, **STEPS})
    assert resp.status_code == 200
    assert base64.b64decode(resp.json()["data"][0]["b64_json"]) == data


@pytest.mark.parametrize("kwargs, fragment", [
    ({"size": "abc"}, "WIDTHxHEIGHT"),
    ({"size": "60x60"}, "multiples of 8"),
    ({"size": "1024x1024"}, "outside what this model supports"),
    ({"n": 11}, "Invalid 'n'"),  # the OpenAI dialect's bound (as OpenAI words it), before the runner's
    ({"response_format": "url"}, "b64_json"),
])
def test_bad_requests(openai_client, image_model, kwargs, fragment):
    with pytest.raises(openai.BadRequestError) as e:
        generate(openai_client, image_model, **kwargs)
    assert e.value.status_code == 400
    assert fragment in e.value.message
    assert e.value.body["type"] == "invalid_request_error"


def test_chat_on_an_image_model_is_refused(server, openai_client, image_model):
    with pytest.raises(openai.APIStatusError) as e:
        openai_client.chat.completions.create(model=image_model,
                                              messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code in (400, 500)
    assert "image generation" in str(e.value)


def test_progress_in_the_runner_log(server, openai_client, image_model):
    generate(openai_client, image_model, seed=9)
    logs = list((server.models_path / "logs").glob("runner-diffusers-*-image-generation.log"))
    assert logs, sorted(p.name for p in (server.models_path / "logs").iterdir())
    text = "".join(p.read_text(errors="replace") for p in logs)
    assert "step 1/2" in text and "step 2/2" in text
    assert "loaded StableDiffusionPipeline" in text


def test_ps_shows_the_runner(server, image_model, openai_client):
    generate(openai_client, image_model, seed=1)
    ps = httpx.get(server.url + "/engines/ps", timeout=30).json()
    mine = [r for r in ps if r["backend_name"] == "diffusers"]
    assert mine and mine[0]["mode"] == "image-generation"


def test_dduf(server, openai_client, image_model, tiny_sd_files):
    dduf = tiny_sd_files[1]
    if dduf is None:
        pytest.skip("this huggingface_hub has no export_folder_as_dduf to write a DDUF file")
    server.model("package", "--dduf", str(dduf), "ai/tiny-sd-dduf")
    info = json.loads(server.model("inspect", "ai/tiny-sd-dduf").stdout)
    assert info["config"]["format"] == "dduf"
    (from_dduf,) = generate(openai_client, "ai/tiny-sd-dduf", seed=42)
    (from_dir,) = generate(openai_client, image_model, seed=42)
    assert png(from_dduf).size == (64, 64)
    assert from_dduf == from_dir  # the same weights, the same seed: the same picture


def test_model_run_on_an_image_model_writes_a_png_and_prints_its_path(server, image_model, tmp_path):
    # the server's default of 50 steps: about 5 s for the tiny model
    result = subprocess.run([sys.executable, "-m", "modelrunner.cli", "run", image_model,
                             "a cat"], cwd=tmp_path, env=server.env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr + result.stdout
    written = sorted(tmp_path.glob("*.png"))
    assert len(written) == 1 and written[0].name.startswith("a-cat-")
    assert written[0].name in result.stdout
    assert png(written[0].read_bytes()).size == (64, 64)
