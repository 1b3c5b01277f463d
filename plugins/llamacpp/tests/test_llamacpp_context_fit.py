"""A model with a long declared context gets the largest context that fits the memory budget;
a configured context is kept exactly. Pure arithmetic and argv building: nothing starts here
(tests/scheduler/test_llamacpp_context.py checks the same on a real llama-server)."""

import pytest

import modelrunner

from modelrunner import RunnerConfig
from modelrunner.testing import load_settings, write_tiny_llama_gguf
from modelrunner_llamacpp import memory
from modelrunner_llamacpp.engine import LlamaCppEngine
from plugins.llamacpp.tests.llamacpp_helpers import make_bundle

GIB = 2**30
# A 70B-like GQA model as its GGUF describes it: 80 layers, 8 KV heads of 128, 128K context.
BIG = {"general.architecture": "llama", "llama.block_count": "80",
       "llama.embedding_length": "8192", "llama.attention.head_count": "64",
       "llama.attention.head_count_kv": "8", "llama.context_length": "131072",
       "llama.vocab_size": "128256"}


def test_kv_bytes_per_token_follow_the_gguf_shape():
    shape = memory.model_shape(BIG)
    # f16 K and V: 80 layers * 8 heads * (128 + 128) * 2 bytes = 320 KiB per token
    assert memory.memory_parts(0, shape, 1)[1] == 80 * 8 * 256 * 2 == 327680
    # a q8_0 cache is 34/32 bytes per element
    assert memory.memory_parts(0, shape, 1, cache_k="q8_0", cache_v="q8_0")[1] == 80 * 8 * 256 * 34 / 32
    assert shape.max_context == 131072


def test_an_unconfigured_context_is_the_largest_multiple_of_256_that_fits_with_all_slots():
    fixed, per_token = 10 * GIB, 327680
    ctx, why = memory.fit_context(fixed, per_token, 4, 16 * GIB, 131072)
    assert ctx % 256 == 0
    assert fixed + memory.pool_bytes(per_token, ctx * 4) <= 16 * GIB
    assert fixed + memory.pool_bytes(per_token, (ctx + 256) * 4) > 16 * GIB
    assert ctx == 4864
    assert why == "fits memory budget of 16.00 GiB with 4 slots; model max 131072"


def test_a_model_that_fits_whole_gets_its_maximum_and_no_budget_means_the_maximum():
    assert memory.fit_context(GIB, 1024, 4, 64 * GIB, 8192) == (
        8192, "model maximum; fits memory budget of 64.00 GiB with 4 slots")
    assert memory.fit_context(GIB, 1024, 4, 0, 131072) == (131072, "model maximum; no memory budget")


def test_the_context_is_never_below_4096_unless_the_model_maximum_is_smaller():
    ctx, why = memory.fit_context(10 * GIB, 327680, 4, 11 * GIB, 131072)
    assert ctx == 4096
    assert why == "minimum 4096: the memory budget of 11.00 GiB with 4 slots holds only 768; " \
                  "model max 131072"
    assert memory.fit_context(10 * GIB, 327680, 4, 11 * GIB, 2048)[0] == 2048


@pytest.fixture(scope="module")
def long_gguf(tmp_path_factory):
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("long") / "long.gguf", n_ctx=131072)


def engine_with(**settings):
    return LlamaCppEngine(settings=load_settings(llamacpp_slots=4, **settings))


def argv_value(argv, flag):
    return int(argv[argv.index(flag) + 1])


def test_the_estimate_and_the_command_are_for_the_chosen_context(tmp_path, long_gguf):
    engine = engine_with()
    bundle = make_bundle(tmp_path, long_gguf, {"format": "gguf", "context_size": 131072})
    config = RunnerConfig()
    budget = 80 * 2**20
    ctx, why = engine.choose_context(bundle, config, budget)
    assert 4096 <= ctx < 131072 and why.endswith("model max 131072")
    config.context_size = ctx  # what the scheduler does
    estimate = engine.estimate_memory(bundle, config)
    assert estimate <= budget
    argv = engine.command(bundle, config, "unix:///tmp/x.sock").argv
    assert argv_value(argv, "--ctx-size") == ctx * 4


@pytest.mark.parametrize("config, bundle_ctx, expected", [
    (RunnerConfig(context_size=131072), 131072, (131072, "configured")),
    (RunnerConfig(context_size=1024), 131072, (1024, "configured")),
    (RunnerConfig(context_size=-1), 131072, (131072, "configured: the model's maximum")),
    (RunnerConfig(runtime_flags=["--ctx-size", "3000"]), 131072,
     (3000, "configured (--ctx-size runtime flag)")),
    (RunnerConfig(), 2048, (2048, "packaged with the model")),
], ids=["configured-big", "configured-small", "minus-one", "runtime-flag", "packaged"])
def test_a_configured_context_is_kept_exactly_whatever_the_budget(tmp_path, long_gguf, config,
                                                                  bundle_ctx, expected):
    bundle = make_bundle(tmp_path, long_gguf, {"format": "gguf", "context_size": bundle_ctx})
    assert engine_with().choose_context(bundle, config, 80 * 2**20) == expected


@pytest.mark.parametrize("key, value", [
    ("llama.block_count", str(2**40)), ("llama.block_count", "-3"),
    ("llama.attention.head_count_kv", "-1000"), ("llama.attention.head_count", "4, -4"),
    ("llama.embedding_length", str(2**40)), ("llama.attention.key_length", "-1")])
def test_a_hostile_gguf_shape_is_a_clear_400_not_a_huge_or_negative_estimate(key, value):
    with pytest.raises(memory.BadShape, match=key.split(".", 1)[1].split(".")[0]):
        memory.model_shape({**BIG, key: value})
    with pytest.raises(modelrunner.EngineError) as caught:
        LlamaCppEngine._shape({**BIG, key: value})
    assert caught.value.status == 400


def test_a_context_past_what_llama_server_counts_is_capped():
    shape = memory.model_shape({**BIG, "llama.context_length": str(2**62),
                                "llama.attention.head_count_kv": "0"})
    context, _ = memory.fit_context(0, 0, 4, 8 * GIB, shape.max_context)
    assert 0 < context * 4 <= 2**31 - 1
