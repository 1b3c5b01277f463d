"""vLLM's argument pieces, without vLLM: where it listens, how user flags split."""

import pytest

from modelrunner_vllm.args import (_PATH_FLAGS, RUNTIME_FLAG_ALLOWLIST, listen_args, parallel_size,
                                  split_flags, take_flags)


@pytest.mark.parametrize("address, expected", [
    ("unix:///run/r.sock", ["--uds", "/run/r.sock"]),
    ("/run/r.sock", ["--uds", "/run/r.sock"]),
    ("http://10.0.0.5:8000", ["--host", "10.0.0.5", "--port", "8000"]),
])
def test_vllm_listens_where_the_scheduler_says(address, expected):
    assert listen_args(address) == expected


def test_user_flags_split_and_names_are_taken_with_all_their_values():
    flags = split_flags(["--served-model-name", "a", "b", "--max-num-seqs=4", "--seed", "-1"])
    names, rest = take_flags(flags, ("--served-model-name",), nargs="+")
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
