"""llama-server's command line from a bundle, a runner config and settings: pure functions, no
binary needed (args.py). What each flag means to a user is in the engine's README."""

import pytest

from modelrunner import Bundle, RunnerConfig
from modelrunner_llamacpp.args import RUNTIME_FLAGS, build_argv, plan


def everything(flag):
    return True


def nothing(flag):
    return False


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.gguf").write_bytes(b"GGUF")
    return Bundle(model_id="m", path=tmp_path, config={"format": "gguf", "context_size": 2048})


def value(argv, flag):
    return argv[argv.index(flag) + 1]


def test_each_slot_gets_the_whole_context_from_one_shared_pool(bundle):
    got = plan(bundle, RunnerConfig(context_size=1000), slots_setting=4, has=everything)
    assert got["slots"] == 4 and got["context"] == 1000 and got["pool"] == 4000
    assert got["args"] == ["--parallel", "4", "--ctx-size", "4000",
                           "--kv-unified", "--kv-unified-per-slot", "1000"]


def test_an_older_llama_server_splits_the_cache_per_slot(bundle):
    got = plan(bundle, RunnerConfig(context_size=1000), slots_setting=2, has=nothing)
    assert got["args"] == ["--parallel", "2", "--ctx-size", "2000"]


def test_no_context_anywhere_leaves_the_model_its_own(bundle):
    bundle.config.pop("context_size")
    got = plan(bundle, RunnerConfig(), has=everything)
    assert got["pool"] is None and "--ctx-size" not in got["args"]
    assert plan(bundle, RunnerConfig(context_size=-1), has=everything)["pool"] is None


def test_runtime_flags_for_slots_and_context_mean_the_same_as_settings(bundle):
    got = plan(bundle, RunnerConfig(runtime_flags=["-np", "2", "--ctx-size=512", "--temp", "0"]),
               slots_setting=4, has=everything)
    assert got["slots"] == 2 and got["context"] == 512
    assert got["rest"] == ["--temp", "0"]


@pytest.mark.parametrize("address, expected", [
    ("unix:///run/r.sock", ["--host", "/run/r.sock"]),
    ("/run/r.sock", ["--host", "/run/r.sock"]),
    ("http://10.0.0.5:8081", ["--host", "10.0.0.5", "--port", "8081"]),
])
def test_llama_server_listens_where_the_scheduler_says(bundle, address, expected):
    argv = build_argv("/bin/llama-server", bundle, RunnerConfig(), address, has=everything)
    assert argv[3:3 + len(expected)] == expected and argv[3 + len(expected)] == "--metrics"


def test_modes_threads_gpu_and_user_flags_last(bundle):
    argv = build_argv("/bin/llama-server", bundle, RunnerConfig(
        mode="embedding", runtime_flags=["--pooling", "cls"]), "unix:///r.sock",
        has=everything, gpu=True, slots=1, threads=3, batch_size=256, mmap=False)
    assert argv[:3] == ["/bin/llama-server", "--model", str(bundle.gguf_files[0])]
    assert "--embeddings" in argv and value(argv, "--threads") == "3"
    assert value(argv, "--batch-size") == "256" and value(argv, "--load-mode") == "none"
    assert value(argv, "-ngl") == "999"          # a GPU build offloads every layer
    assert argv[-2:] == ["--pooling", "cls"]     # the user's flags win, and no default pooling
    assert argv.count("--pooling") == 1


def test_a_generative_model_embeds_with_mean_pooling(bundle):
    argv = build_argv("llama-server", bundle, RunnerConfig(mode="embedding"), "unix:///r.sock",
                      has=everything, has_pooling=False)
    assert value(argv, "--pooling") == "mean"


def test_no_flag_in_the_allow_list_names_a_file_or_the_listening_address():
    assert not RUNTIME_FLAGS & {"--model", "-m", "--host", "--port", "--mmproj", "--log-file",
                                "--chat-template-file", "--api-key", "--slot-save-path"}


@pytest.mark.parametrize("budget", [0, -1, 256])
def test_configure_think_becomes_llama_servers_reasoning_budget(bundle, budget):
    config = RunnerConfig(extra={"llamacpp": {"reasoning-budget": budget}})
    argv = build_argv("llama-server", bundle, config, "unix:///r.sock", has=everything)
    assert value(argv, "--reasoning-budget") == str(budget)
    # a runtime flag comes later and wins, as llama-server takes the last value
    config.runtime_flags = ["--reasoning-budget", "8"]
    argv = build_argv("llama-server", bundle, config, "unix:///r.sock", has=everything)
    assert argv[len(argv) - 1 - argv[::-1].index("--reasoning-budget") + 1] == "8"


def test_no_thinking_setting_leaves_llama_server_its_default(bundle):
    argv = build_argv("llama-server", bundle, RunnerConfig(), "unix:///r.sock", has=everything)
    assert "--reasoning-budget" not in argv
    old = build_argv("llama-server", bundle, RunnerConfig(extra={"llamacpp": {"reasoning-budget": 0}}),
                     "unix:///r.sock", has=nothing)
    assert "--reasoning-budget" not in old  # a build without the flag is not made to fail


@pytest.mark.parametrize("bad", [-2, "0", 1.5, True, [1]])
def test_a_reasoning_budget_that_is_not_an_integer_from_minus_one_is_refused(bundle, bad):
    from modelrunner import EngineError
    from modelrunner_llamacpp.engine import LlamaCppEngine
    with pytest.raises(EngineError, match="reasoning-budget"):
        LlamaCppEngine().validate_configure({"llamacpp": {"reasoning-budget": bad}})


def test_llama_server_names_the_model_by_its_id_never_by_its_path(bundle):
    """Without --alias llama-server names the model by its --model path in every answer."""
    argv = build_argv("llama-server", bundle, RunnerConfig(), "unix:///r.sock", has=everything)
    assert value(argv, "--alias") == "m"
    assert "--alias" not in build_argv("llama-server", bundle, RunnerConfig(), "unix:///r.sock",
                                       has=nothing)


def test_a_configured_draft_model_runs_speculative_decoding(bundle, tmp_path):
    (tmp_path / "draft" / "model").mkdir(parents=True)
    (tmp_path / "draft" / "model" / "draft.gguf").write_bytes(b"GGUF")
    bundle.draft = Bundle(model_id="d", path=tmp_path / "draft", config={"format": "gguf"})
    config = RunnerConfig(extra={"speculative": {"num_tokens": 4, "min_acceptance_rate": 0.5}})
    argv = build_argv("llama-server", bundle, config, "unix:///r.sock", has=everything)
    assert value(argv, "--model-draft") == str(tmp_path / "draft" / "model" / "draft.gguf")
    assert value(argv, "--spec-draft-n-max") == "4" and value(argv, "--spec-draft-p-min") == "0.5"
    bundle.draft = None
    assert "--model-draft" not in build_argv("llama-server", bundle, config, "unix:///r.sock",
                                             has=everything)


def test_an_embedding_runner_embeds_an_input_as_long_as_its_context(bundle):
    """llama-server embeds an input in one physical batch (512 tokens by default): a 601-token
    input to a runner with a 2048 context was a 500 "increase the physical batch size"."""
    for mode in ("embedding", "reranking"):
        argv = build_argv("llama-server", bundle, RunnerConfig(mode=mode, context_size=2048),
                          "unix:///tmp/r.sock", has=everything)
        assert value(argv, "--batch-size") == value(argv, "--ubatch-size") == "2048"
    huge = build_argv("llama-server", bundle, RunnerConfig(mode="embedding", context_size=131072),
                      "unix:///tmp/r.sock", has=everything)
    assert value(huge, "--ubatch-size") == "8192"  # the compute buffer grows with it
    chat = build_argv("llama-server", bundle, RunnerConfig(context_size=2048),
                      "unix:///tmp/r.sock", has=everything)
    assert "--ubatch-size" not in chat
    own = build_argv("llama-server", bundle, RunnerConfig(mode="embedding", context_size=2048,
                                                          runtime_flags=["-ub", "1024"]),
                     "unix:///tmp/r.sock", has=everything)
    assert own.count("-ub") == 1 and "--ubatch-size" not in own  # the user's own batch wins
