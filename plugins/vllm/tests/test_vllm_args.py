"""vLLM's argument pieces, without vLLM: where it listens, how user flags split."""

import pytest

from modelrunner_vllm.args import _PATH_FLAGS, RUNTIME_FLAG_ALLOWLIST, listen_args, split_flags, take_flags


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
