"""The vLLM engine's runner command, names, flags and memory estimate, without starting vLLM.

These need only the plugin (no vllm, no torch) and run in the core test run.
"""

import json
from pathlib import Path

import pytest

from modelrunner import Bundle, EngineError, RunnerConfig
from modelrunner.testing import load_settings, select_engine

from modelrunner_vllm.args import served_model_names
from modelrunner_vllm.engine import DEFAULT_TEMPLATE, VLLMEngine

MODEL_ID = "sha256:" + "ab12" * 16
TAG = "docker.io/ai/tiny-llama:latest"


def make_bundle(root, *, hf_config=None, tokenizer_config=None, context_size=512,
                quantization="F32", tags=(TAG,), weights_bytes=1000, extra_files=()):
    root = Path(root)
    model = root / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "model.safetensors").write_bytes(b"\0" * weights_bytes)
    (model / "config.json").write_text(json.dumps(hf_config or {
        "architectures": ["LlamaForCausalLM"], "hidden_size": 128, "num_attention_heads": 2,
        "num_key_value_heads": 2, "num_hidden_layers": 2, "max_position_embeddings": 512}))
    if tokenizer_config is not None:
        (model / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    for name, text in extra_files:
        (model / name).write_text(text)
    config = {"format": "safetensors", "quantization": quantization, "context_size": context_size}
    return Bundle(model_id=MODEL_ID, path=root, config=config, tags=list(tags))


def engine(**settings):
    settings.setdefault("vllm_device", "cpu")
    settings.setdefault("vllm_path", "/bin/true")  # an executable: the command is only built
    return VLLMEngine(settings=load_settings(**settings))


def arg(argv, flag):
    i = argv.index(flag)
    return argv[i + 1]


def test_engine_contract():
    e = engine()
    assert e.name == "vllm"
    assert e.formats == ("safetensors",)
    assert e.modes == ("completion", "embedding")
    assert select_engine({"vllm": e}, "safetensors") is e
    with pytest.raises(EngineError) as err:
        select_engine({"vllm": e}, "gguf", requested="vllm")
    assert err.value.status == 400


def test_cpu_command(tmp_path):
    bundle = make_bundle(tmp_path, tokenizer_config={"chat_template": "{{ messages }}"})
    cmd = engine(vllm_cpu_kvcache_space=2).runner_command(bundle, RunnerConfig(context_size=512),
                                                          "/tmp/x.sock")
    argv = cmd.argv
    assert argv[:5] == ["/bin/true", "serve", str(bundle.model_dir), "--uds", "/tmp/x.sock"]
    assert arg(argv, "--max-model-len") == "512"
    assert arg(argv, "--dtype") == "float32"
    assert "--chat-template" not in argv  # the tokenizer has its own
    assert "--runner" not in argv
    assert "--gpu-memory-utilization" not in argv
    assert cmd.env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert cmd.env["HF_HUB_OFFLINE"] == "1"
    assert cmd.health_path == "/health"


def test_served_names_cover_every_form_a_user_types(tmp_path):
    names = served_model_names(make_bundle(tmp_path))
    assert names[0] == TAG  # what /v1/models shows
    for name in ("ai/tiny-llama", "tiny-llama", "ai/tiny-llama:latest", "tiny-llama:latest",
                 "docker.io/ai/tiny-llama", "index.docker.io/ai/tiny-llama:latest",
                 MODEL_ID, MODEL_ID.split(":")[1], MODEL_ID.split(":")[1][:12]):
        assert name in names, name
    assert len(names) == len(set(names))
    hf = served_model_names(make_bundle(tmp_path / "hf", tags=["huggingface.co/org/repo:Q4_K_M"]))
    assert "hf.co/org/repo:Q4_K_M" in hf and "huggingface.co/org/repo:Q4_K_M" in hf
    other = served_model_names(make_bundle(tmp_path / "o", tags=["docker.io/me/model:v1"]))
    assert "me/model:v1" in other and "model:v1" not in other and "me/model" not in other


def test_served_names_in_the_command_merge_the_users(tmp_path):
    bundle = make_bundle(tmp_path)
    cmd = engine().runner_command(
        bundle, RunnerConfig(runtime_flags=["--served-model-name", "mine", "--seed", "1"]), "/s")
    i = cmd.argv.index("--served-model-name")
    assert cmd.argv.count("--served-model-name") == 1
    served = []
    for word in cmd.argv[i + 1:]:
        if word.startswith("--"):
            break
        served.append(word)
    assert served[0] == TAG and "mine" in served and "ai/tiny-llama" in served
    assert cmd.argv[-2:] == ["--seed", "1"]


def test_chat_template_choice(tmp_path):
    # no template anywhere: the ChatML default
    bare = make_bundle(tmp_path / "bare", tokenizer_config={"eos_token": "x"})
    argv = engine().runner_command(bare, RunnerConfig(), "/s").argv
    assert arg(argv, "--chat-template") == str(DEFAULT_TEMPLATE)
    assert DEFAULT_TEMPLATE.is_file()
    # a template layer wins, in any mode
    layered = make_bundle(tmp_path / "layer", tokenizer_config={"chat_template": "x"},
                          extra_files=[("template.jinja", "{{ messages }}")])
    argv = engine().runner_command(layered, RunnerConfig(), "/s").argv
    assert arg(argv, "--chat-template") == str(layered.model_dir / "template.jinja")
    # embedding mode needs no default template
    argv = engine().runner_command(bare, RunnerConfig(mode="embedding"), "/s").argv
    assert "--chat-template" not in argv
    assert arg(argv, "--runner") == "pooling"


def test_default_template_renders():
    jinja2 = pytest.importorskip("jinja2")
    text = jinja2.Template(DEFAULT_TEMPLATE.read_text()).render(
        messages=[{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_gpu_command(tmp_path):
    bundle = make_bundle(tmp_path)
    config = RunnerConfig(extra={"vllm": {"gpu-memory-utilization": 0.5,
                                          "hf-overrides": {"rope_theta": 20000}}})
    cmd = engine(vllm_device="cuda").runner_command(bundle, config, "/s")
    assert arg(cmd.argv, "--gpu-memory-utilization") == "0.5"
    assert json.loads(arg(cmd.argv, "--hf-overrides")) == {"rope_theta": 20000}
    assert "--dtype" not in cmd.argv
    assert "VLLM_CPU_KVCACHE_SPACE" not in cmd.env
    # the setting applies when _configure gave none
    cmd = engine(vllm_device="cuda", vllm_gpu_memory_utilization=0.7).runner_command(
        bundle, RunnerConfig(), "/s")
    assert arg(cmd.argv, "--gpu-memory-utilization") == "0.7"
    with pytest.raises(EngineError):
        engine(vllm_device="cuda").runner_command(
            bundle, RunnerConfig(extra={"vllm": {"gpu-memory-utilization": 3}}), "/s")


def test_hf_override_keys_are_identifiers(tmp_path):
    bundle = make_bundle(tmp_path)
    with pytest.raises(EngineError):
        engine().runner_command(
            bundle, RunnerConfig(extra={"vllm": {"hf-overrides": {"a-b": 1}}}), "/s")


def test_configure_refuses_overrides_naming_files_and_bad_fractions_before_any_runner(tmp_path):
    vllm = engine(vllm_device="cuda")
    for block in ({"hf-overrides": {"tokenizer": "../../other-model"}},
                  {"hf-overrides": "rope_theta=1"}, {"gpu-memory-utilization": 0},
                  {"gpu-memory-utilization": 1.5}):
        with pytest.raises(EngineError) as caught:
            vllm.validate_configure({"vllm": block})
        assert caught.value.status == 400
    vllm.validate_configure({"vllm": {"hf-overrides": {"rope_theta": 1e6},
                                      "gpu-memory-utilization": 0.8}})
    # and a config that slipped past (an old store) never reaches vLLM's command line
    with pytest.raises(EngineError, match="path"):
        vllm.runner_command(make_bundle(tmp_path), RunnerConfig(
            extra={"vllm": {"hf-overrides": {"tokenizer": "/etc"}}}), "/s")


def test_context_size(tmp_path):
    bundle = make_bundle(tmp_path, context_size=512)
    e = engine()
    assert arg(e.runner_command(bundle, RunnerConfig(context_size=256), "/s").argv,
               "--max-model-len") == "256"
    assert "--max-model-len" not in e.runner_command(bundle, RunnerConfig(context_size=-1),
                                                     "/s").argv
    argv = e.runner_command(bundle, RunnerConfig(runtime_flags=["--max-model-len=128"]), "/s").argv
    assert argv.count("--max-model-len") == 1 and arg(argv, "--max-model-len") == "128"
    # a model whose own context does not fit the CPU KV cache gets the largest that does
    big = make_bundle(tmp_path / "big", context_size=131072, hf_config={
        "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
        "num_hidden_layers": 32})
    argv = e.runner_command(big, RunnerConfig(context_size=131072), "/s").argv
    # float32 KV: 2 * 32 layers * 8 heads * 128 * 4 bytes = 256 KiB a token; 0.95 GiB -> 3840
    assert arg(argv, "--max-model-len") == "3840"
    # ... but a context the user configured is passed as it is
    argv = e.runner_command(big, RunnerConfig(context_size=65536), "/s").argv
    assert arg(argv, "--max-model-len") == "65536"


def test_runtime_flags(tmp_path):
    e = engine()
    e.validate_runtime_flags(["--max-num-seqs", "4", "--enforce-eager", "--seed", "-1",
                              "--dtype=bfloat16", "--kv-cache-dtype", "auto"])
    for bad in (["--chat-template", "x"], ["--trust-remote-code"], ["--model", "x"],
                ["--uds", "sock"], ["--max-num-seqs", "/etc/passwd"], ["--seed=--uds"],
                ["--unknown-flag"], [3]):
        with pytest.raises(EngineError):
            e.validate_runtime_flags(bad)
    bundle = make_bundle(tmp_path)
    argv = e.runner_command(bundle, RunnerConfig(runtime_flags=["--dtype", "bfloat16"]), "/s").argv
    assert argv.count("--dtype") == 1 and arg(argv, "--dtype") == "bfloat16"
    with pytest.raises(EngineError):
        e.runner_command(bundle, RunnerConfig(runtime_flags=["--tokenizer", "x"]), "/s")


def test_modes_and_files(tmp_path):
    e = engine()
    bundle = make_bundle(tmp_path)
    with pytest.raises(EngineError):
        e.runner_command(bundle, RunnerConfig(mode="reranking"), "/s")
    (bundle.model_dir / "model.safetensors").unlink()
    with pytest.raises(EngineError) as err:
        e.runner_command(bundle, RunnerConfig(), "/s")
    assert err.value.status == 400


def test_not_installed(tmp_path):
    e = VLLMEngine(settings=load_settings(vllm_path=str(tmp_path / "missing")))
    ok, detail = e.installed()
    assert not ok and "install.sh" in detail
    with pytest.raises(EngineError) as err:
        e.runner_command(make_bundle(tmp_path), RunnerConfig(), "/s")
    assert err.value.status == 412


def test_memory_estimate(tmp_path):
    bundle = make_bundle(tmp_path, quantization="BF16", weights_bytes=2 * 2**20)
    cpu = engine(vllm_cpu_kvcache_space=1).estimate_memory(bundle, RunnerConfig())
    # bf16 weights run as float32 on CPU: twice the file; plus 1 GiB KV and the processes
    assert cpu == 4 * 2**20 + 2**30 + int(2.25 * 2**30)
    same = engine().estimate_memory(bundle, RunnerConfig(runtime_flags=["--dtype", "bfloat16"]))
    assert same == 2 * 2**20 + 2**30 + int(2.25 * 2**30)
    gpu = engine(vllm_device="cuda").estimate_memory(bundle, RunnerConfig())
    assert 0 < gpu < 4 * 2**30 and gpu < cpu  # host memory only: weights and KV live on the GPU
