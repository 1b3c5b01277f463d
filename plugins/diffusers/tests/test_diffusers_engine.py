"""The engine's side in the API/scheduler processes: selection, command, memory. No torch here."""

import json
import shutil
import struct
import subprocess
import sys
from types import SimpleNamespace

import pytest

from modelrunner import Bundle, EngineError, RunnerConfig
from modelrunner.testing import load_settings, select_engine

from modelrunner_diffusers.engine import PROCESS_ALLOWANCE, DiffusersEngine
from modelrunner_diffusers.runner import Generator, RequestError


def engine(**settings):
    return DiffusersEngine(settings=load_settings(**settings))


def bundle_of(tmp_path, source, fmt):
    root = tmp_path / "bundle"
    model = root / "model"
    if source.is_dir():
        shutil.copytree(source, model)
    else:
        model.mkdir(parents=True)
        shutil.copyfile(source, model / source.name)
    return Bundle(model_id="sha256:" + "ab" * 32, path=root, config={"format": fmt},
                  tags=["docker.io/ai/tiny-sd:latest"])


def test_selected_for_diffusers_and_dduf():
    engines = {"llama.cpp": SimpleNamespace(name="llama.cpp", formats=("gguf",)),
               "diffusers": DiffusersEngine()}
    for fmt in ("diffusers", "dduf"):
        assert select_engine(engines, fmt).name == "diffusers"
        assert select_engine(engines, fmt, "diffusers").name == "diffusers"
    with pytest.raises(EngineError) as e:
        select_engine(engines, "gguf", "diffusers")
    assert e.value.status == 400
    assert DiffusersEngine.modes == ("image-generation",)


def test_registered_as_plugin():
    import importlib.metadata

    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="modelrunner")}
    assert eps.get("diffusers") == "modelrunner_diffusers"


def test_installed_without_importing_torch():
    code = ("import sys; from modelrunner_diffusers import DiffusersEngine; "
            "ok, detail = DiffusersEngine().installed(); "
            "print(ok, detail, 'torch' in sys.modules, 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout
    assert out.startswith("True diffusers "), out
    assert out.strip().endswith("False False"), out


def test_runner_command_for_a_directory(tmp_path, tiny_sd_dir):
    b = bundle_of(tmp_path, tiny_sd_dir, "diffusers")
    cmd = engine(diffusers_device="cpu", diffusers_steps=4, diffusers_threads=1).runner_command(
        b, RunnerConfig(mode="image-generation"), "/tmp/x.sock")
    argv = cmd.argv
    assert argv[:3] == [sys.executable, "-m", "modelrunner_diffusers.runner"]
    assert argv[argv.index("--model") + 1] == str(b.model_dir)
    assert argv[argv.index("--socket") + 1] == "/tmp/x.sock"
    assert argv[argv.index("--device") + 1] == "cpu"
    assert argv[argv.index("--dtype") + 1] == "auto"
    assert argv[argv.index("--steps") + 1] == "4"
    assert argv[argv.index("--threads") + 1] == "1"
    assert cmd.health_path == "/health"
    assert cmd.env["HF_HUB_OFFLINE"] == "1"


def test_runner_command_for_a_network_address(tmp_path, tiny_sd_dir):
    b = bundle_of(tmp_path, tiny_sd_dir, "diffusers")
    argv = engine().runner_command(b, RunnerConfig(mode="image-generation"),
                                   "http://10.0.0.7:41234").argv
    assert argv[argv.index("--host") + 1] == "10.0.0.7"
    assert argv[argv.index("--port") + 1] == "41234"
    assert "--socket" not in argv
    with pytest.raises(EngineError, match="cannot listen"):
        engine().runner_command(b, RunnerConfig(mode="image-generation"), "ftp://x:1")


def test_runner_command_for_dduf(tmp_path, tiny_sd_files):
    dduf = tiny_sd_files[1]
    if dduf is None:
        pytest.skip("huggingface_hub cannot write DDUF files here")
    b = bundle_of(tmp_path, dduf, "dduf")
    argv = engine().runner_command(b, RunnerConfig(mode="image-generation"), "/s").argv
    assert argv[argv.index("--model") + 1] == str(b.model_dir / dduf.name)


def test_refuses_other_modes_and_flags(tmp_path, tiny_sd_dir):
    b = bundle_of(tmp_path, tiny_sd_dir, "diffusers")
    with pytest.raises(EngineError, match="serves image generation"):
        engine().runner_command(b, RunnerConfig(mode="completion"), "/s")
    with pytest.raises(EngineError, match="no runtime flags"):
        engine().runner_command(b, RunnerConfig(mode="image-generation",
                                                runtime_flags=["--x"]), "/s")
    with pytest.raises(EngineError, match="diffusers_device"):
        engine(diffusers_device="tpu").runner_command(b, RunnerConfig(mode="image-generation"),
                                                       "/s")


def test_not_a_pipeline(tmp_path):
    (tmp_path / "b" / "model").mkdir(parents=True)
    b = Bundle(model_id="x", path=tmp_path / "b", config={"format": "diffusers"})
    with pytest.raises(EngineError, match="model_index.json"):
        engine().runner_command(b, RunnerConfig(mode="image-generation"), "/s")


def _write_safetensors(path, tensors):
    header = {name: {"dtype": dtype, "shape": shape, "data_offsets": [0, 0]}
              for name, (dtype, shape) in tensors.items()}
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def test_estimate_memory_follows_the_load_dtype(tmp_path):
    model = tmp_path / "b" / "model"
    (model).mkdir(parents=True)
    (model / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    # 1M float16 elements in the UNet, 1M float32 in the text encoder, 1M int8
    _write_safetensors(model / "unet" / "diffusion_pytorch_model.safetensors",
                       {"w": ("F16", [1000, 1000])})
    _write_safetensors(model / "text_encoder" / "model.safetensors",
                       {"w": ("F32", [1000, 1000]), "q": ("I8", [1000, 1000])})
    b = Bundle(model_id="x", path=tmp_path / "b", config={"format": "diffusers"})
    cfg = RunnerConfig(mode="image-generation")
    fp32 = engine(diffusers_dtype="float32").estimate_memory(b, cfg)
    fp16 = engine(diffusers_dtype="float16").estimate_memory(b, cfg)
    assert fp32 == int((4_000_000 * 2 + 1_000_000) * 1.25) + PROCESS_ALLOWANCE
    assert fp16 == int((2_000_000 * 2 + 1_000_000) * 1.25) + PROCESS_ALLOWANCE
    # auto on a CPU device is float32
    assert engine(diffusers_device="cpu").estimate_memory(b, cfg) == fp32
    assert engine(diffusers_device="cuda").estimate_memory(b, cfg) == fp16


def test_estimate_memory_of_the_tiny_model(tmp_path, tiny_sd_files):
    folder, dduf = tiny_sd_files
    weights = sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
    cfg = RunnerConfig(mode="image-generation")
    eng = engine(diffusers_dtype="float32")
    est = eng.estimate_memory(bundle_of(tmp_path / "d", folder, "diffusers"), cfg)
    assert PROCESS_ALLOWANCE + weights <= est <= PROCESS_ALLOWANCE + 1.3 * weights
    if dduf is not None:  # read from the safetensors headers inside the zip: the same numbers
        assert eng.estimate_memory(bundle_of(tmp_path / "z", dduf, "dduf"), cfg) == est


# -- request validation of the runner (no pipeline needed) ---------------------------------------


@pytest.fixture
def gen():
    g = Generator("/nowhere", steps=20, max_scale=2)
    g.pipe = SimpleNamespace(vae_scale_factor=8)
    g.default_size = (512, 512)
    return g


def test_parse_defaults(gen):
    args = gen.parse({"model": "m", "prompt": "a cat"})
    assert args == {"prompt": "a cat", "n": 1, "width": 512, "height": 512,
                    "negative_prompt": None, "steps": 20, "guidance_scale": 7.5, "seed": None}
    args = gen.parse({"prompt": "x", "n": 3, "size": "768x256", "seed": 7,
                      "num_inference_steps": 2, "guidance_scale": 0, "negative_prompt": "dog",
                      "response_format": "b64_json"})
    assert (args["n"], args["width"], args["height"], args["seed"], args["steps"]) == \
        (3, 768, 256, 7, 2)


@pytest.mark.parametrize("body, param", [
    ({}, "prompt"),
    ({"prompt": " "}, "prompt"),
    ({"prompt": "x", "n": 0}, "n"),
    ({"prompt": "x", "n": 11}, "n"),
    ({"prompt": "x", "n": True}, "n"),
    ({"prompt": "x", "size": "abc"}, "size"),
    ({"prompt": "x", "size": "500x512"}, "size"),
    ({"prompt": "x", "size": "2048x512"}, "size"),
    ({"prompt": "x", "size": "32x32"}, "size"),
    ({"prompt": "x", "size": 512}, "size"),
    ({"prompt": "x", "response_format": "url"}, "response_format"),
    ({"prompt": "x", "response_format": "png"}, "response_format"),
    ({"prompt": "x", "num_inference_steps": 0}, "num_inference_steps"),
    ({"prompt": "x", "guidance_scale": "high"}, "guidance_scale"),
    ({"prompt": "x", "seed": -1}, "seed"),
    ({"prompt": "x", "negative_prompt": 3}, "negative_prompt"),
])
def test_parse_refuses(gen, body, param):
    with pytest.raises(RequestError) as e:
        gen.parse(body)
    assert e.value.status == 400 and e.value.param == param
    err = e.value.body()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]


def test_size_range_follows_the_model(gen):
    assert gen.parse_size("1024x1024") == (1024, 1024)   # 2x the default
    assert gen.parse_size("64x1024") == (64, 1024)       # 8 x the VAE factor
    assert gen.parse_size(None) == (512, 512) == gen.parse_size("auto")
