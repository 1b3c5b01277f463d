"""``vllm serve``'s command line from a bundle, a runner config and the engine's settings:
pure functions (args.py), no vLLM, nothing started. What each setting means is in the README."""

import json

import pytest

from modelrunner import Bundle, RunnerConfig, engine_args

from modelrunner_vllm.args import (_PATH_FLAGS, RUNTIME_FLAG_ALLOWLIST, build_argv,
                                   parallel_size)

VLLM = ["/venv/bin/python", "-m", "modelrunner_vllm.launch"]


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "model").mkdir()
    return Bundle(model_id="sha256:" + "ab" * 32, path=tmp_path, tags=["docker.io/ai/qwen:latest"],
                  config={"format": "safetensors", "context_size": 32768})


def value(argv, flag):
    assert argv.count(flag) == 1, argv
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("address, expected", [
    ("unix:///run/r.sock", ["--uds", "/run/r.sock"]),
    ("/run/r.sock", ["--uds", "/run/r.sock"]),
    ("http://10.0.0.5:8000", ["--host", "10.0.0.5", "--port", "8000"]),
])
def test_vllm_serves_the_model_folder_where_the_scheduler_says(bundle, address, expected):
    argv = build_argv(VLLM, bundle, RunnerConfig(), address, on_cpu=True)
    assert argv[:5 + len(expected)] == [*VLLM, "serve", str(bundle.model_dir), *expected]


def test_a_configured_context_is_the_max_model_len_and_minus_one_leaves_vllm_the_models(bundle):
    def context(config, kv_fit=None, on_cpu=True):
        argv = build_argv(VLLM, bundle, config, "/s", on_cpu=on_cpu, kv_fit=kv_fit)
        return value(argv, "--max-model-len") if "--max-model-len" in argv else None

    assert context(RunnerConfig(context_size=4096)) == "4096"
    assert context(RunnerConfig()) == "32768"  # the model's own
    assert context(RunnerConfig(context_size=-1)) is None
    # on CPU the model's own context is cut to what the KV cache holds; a configured one never is
    assert context(RunnerConfig(), kv_fit=3840) == "3840"
    assert context(RunnerConfig(context_size=65536), kv_fit=3840) == "65536"
    assert context(RunnerConfig(), kv_fit=3840, on_cpu=False) == "32768"
    # the runtime flag says it itself, once
    argv = build_argv(VLLM, bundle, RunnerConfig(context_size=4096,
                                                 runtime_flags=["--max-model-len=1024"]),
                      "/s", on_cpu=True)
    assert value(argv, "--max-model-len") == "1024"


def test_embedding_mode_runs_vllms_pooling_runner(bundle):
    assert "--runner" not in build_argv(VLLM, bundle, RunnerConfig(), "/s", on_cpu=True)
    argv = build_argv(VLLM, bundle, RunnerConfig(mode="embedding"), "/s", on_cpu=True)
    assert value(argv, "--runner") == "pooling"


def test_every_name_of_the_model_is_served_with_the_users_own_last(bundle):
    argv = build_argv(VLLM, bundle, RunnerConfig(runtime_flags=["--served-model-name", "mine"]),
                      "/s", on_cpu=True)
    names = []
    for word in argv[argv.index("--served-model-name") + 1:]:
        if word.startswith("--"):
            break
        names.append(word)
    assert names[0] == "docker.io/ai/qwen:latest" and "ai/qwen" in names and "qwen" in names
    assert "mine" in names and argv.count("--served-model-name") == 1


def test_configured_gpu_share_and_hf_overrides_reach_vllm_on_a_gpu(bundle):
    config = RunnerConfig(extra={"vllm": {"gpu-memory-utilization": 0.5,
                                          "hf-overrides": {"rope_theta": 20000}}})
    argv = build_argv(VLLM, bundle, config, "/s", on_cpu=False, gpu_memory_utilization=0.9)
    assert value(argv, "--gpu-memory-utilization") == "0.5"  # the configured share wins
    assert json.loads(value(argv, "--hf-overrides")) == {"rope_theta": 20000}
    # the setting when nothing is configured; on CPU there is no GPU to share
    argv = build_argv(VLLM, bundle, RunnerConfig(), "/s", on_cpu=False, gpu_memory_utilization=0.7)
    assert value(argv, "--gpu-memory-utilization") == "0.7"
    assert "--gpu-memory-utilization" not in build_argv(VLLM, bundle, config, "/s", on_cpu=True)
    with pytest.raises(ValueError, match="gpu-memory-utilization"):
        build_argv(VLLM, bundle, RunnerConfig(extra={"vllm": {"gpu-memory-utilization": 3}}),
                   "/s", on_cpu=False)


def test_settings_are_defaults_the_users_runtime_flags_override(bundle):
    config = RunnerConfig(runtime_flags=["--dtype=bfloat16", "--max-num-seqs", "2", "--seed", "-1"])
    argv = build_argv(VLLM, bundle, config, "/s", on_cpu=True, dtype="float32", max_num_seqs=8,
                      chat_template="/t.jinja")
    assert value(argv, "--dtype") == "bfloat16" and value(argv, "--max-num-seqs") == "2"
    assert value(argv, "--chat-template") == "/t.jinja"
    assert argv[-6:] == ["--dtype", "bfloat16", "--max-num-seqs", "2", "--seed", "-1"]
    argv = build_argv(VLLM, bundle, RunnerConfig(), "/s", on_cpu=True, dtype="float32",
                      max_num_seqs="8")
    assert value(argv, "--dtype") == "float32" and value(argv, "--max-num-seqs") == "8"
    assert "--chat-template" not in argv


def test_user_flags_split_and_names_are_taken_with_all_their_values():
    flags = engine_args.split_flags(["--served-model-name", "a", "b", "--max-num-seqs=4", "--seed", "-1"])
    names, rest = engine_args.take_flags(flags, ("--served-model-name",), nargs="+")
    assert names == ["a", "b"] and rest == ["--max-num-seqs", "4", "--seed", "-1"]


def test_flags_that_take_paths_are_not_allow_listed_for_users():
    from modelrunner_vllm.engine import VLLMEngine
    assert not VLLMEngine.runtime_flags & _PATH_FLAGS
    assert VLLMEngine.runtime_flags <= RUNTIME_FLAG_ALLOWLIST


def test_hf_overrides_become_compact_json_for_vllm():
    from modelrunner_vllm.args import hf_overrides_arg
    block = {"hf-overrides": {"rope_scaling": {"rope_type": "yarn", "factor": 4.0},
                              "max_position_embeddings": 32768}}
    assert hf_overrides_arg(block) == ('{"rope_scaling":{"rope_type":"yarn","factor":4.0},'
                                       '"max_position_embeddings":32768}')
    assert hf_overrides_arg({}) is None and hf_overrides_arg({"hf-overrides": {}}) is None


@pytest.mark.parametrize("overrides, why", [
    ([1, 2], "JSON object"),
    ("{}", "JSON object"),
    ({"a-b": 1}, "identifier"),
    ({"tokenizer": "/etc/passwd"}, "path"),
    ({"auto_map": {"AutoConfig": "../evil.Config"}}, "path"),
    ({"names": ["ok", "x\\y"]}, "path"),
])
def test_hf_overrides_that_are_not_an_object_of_plain_values_are_refused(overrides, why):
    from modelrunner_vllm.args import hf_overrides_arg
    with pytest.raises(ValueError, match=why):
        hf_overrides_arg({"hf-overrides": overrides})


@pytest.mark.parametrize("given, expected", [(0.5, 0.5), ("0.9", 0.9), (1, 1.0), (None, None)])
def test_gpu_memory_utilization_is_a_fraction(given, expected):
    from modelrunner_vllm.args import gpu_memory_fraction
    assert gpu_memory_fraction(given) == expected


@pytest.mark.parametrize("bad", [0, -0.1, 1.01, "most", True])
def test_gpu_memory_utilization_outside_zero_to_one_is_refused(bad):
    from modelrunner_vllm.args import gpu_memory_fraction
    with pytest.raises(ValueError, match="gpu-memory-utilization"):
        gpu_memory_fraction(bad)


@pytest.mark.parametrize("flags, gpus", [
    ([], 1), (["--tensor-parallel-size", "2"], 2), (["-tp", "4"], 4),
    (["--tensor-parallel-size=2", "--pipeline-parallel-size", "2"], 4), (["-pp", "3"], 3)])
def test_a_vllm_runner_uses_tensor_times_pipeline_parallel_gpus(flags, gpus):
    assert parallel_size(flags) == gpus
