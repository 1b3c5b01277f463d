"""The memory estimate against what llama-server really holds (RSS) for SmolLM2-135M."""

import pytest

from modelrunner import RunnerConfig
from plugins.llamacpp.tests.llamacpp_helpers import Runner, make_bundle


@pytest.mark.parametrize("context_size", [512, None], ids=["ctx512x4", "model-ctx"])
def test_estimate_close_to_rss(engine, llama_server, smollm2, tmp_path, context_size):
    """Measured on CPU (mmapped weights, all touched by warmup): RSS 174 MiB with 4x512 tokens,
    309 MiB with the model's 8192; estimates 199 and 341 MiB. The estimate must not be below
    what the runner holds, nor wildly above (it decides evictions)."""
    bundle = make_bundle(tmp_path, smollm2, {"format": "gguf"})
    config = RunnerConfig(context_size=context_size)
    with Runner(engine, bundle, config) as runner:
        assert runner.proc.poll() is None, runner.stderr
        with runner.client() as client:
            client.post("/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        rss = runner.rss_bytes()
    estimate = engine.estimate_memory(bundle, config)
    weights = smollm2.stat().st_size
    print(f"\nSmolLM2 context={context_size}: RSS {rss / 2**20:.0f} MiB, "
          f"estimate {estimate / 2**20:.0f} MiB ({estimate / rss:.2f}x)")
    assert rss > weights  # the weights are resident
    assert 1.0 <= estimate / rss <= 1.5
