"""A user measures a model's speed with `docker model bench` at several concurrency levels."""

import json


def test_bench_json_reports_each_level_with_tokens_per_second_and_ttft(docker_cli, server):
    out = docker_cli.run("model", "bench", "ai/smollm2", "--concurrency", "1,2", "--duration",
                         "2s", "--max-tokens", "16", "--prompt", "Count to ten.", "--json",
                         env=server.env).stdout
    report = json.loads(out)
    assert report["model"] == "ai/smollm2"
    assert [r["concurrency"] for r in report["results"]] == [1, 2]
    for level in report["results"]:
        assert level["errors"] == 0 and level["requests"] >= level["concurrency"]
        assert 0 < level["tokens"] <= 16 * level["requests"]
        assert level["tokens_per_second"] > 0
        assert 0 < level["ttft_ms"]["p50"] <= level["ttft_ms"]["p95"]
        assert level["duration_s"] >= 2


def test_bench_table_and_bad_flags(docker_cli, server):
    out = docker_cli.run("model", "bench", "ai/smollm2", "--concurrency", "1", "--duration",
                         "1s", "--max-tokens", "4", env=server.env).stdout
    assert "TOKENS/S" in out and "TTFT P50" in out
    bad = docker_cli.run("model", "bench", "ai/smollm2", "--duration", "soon", env=server.env,
                         check=False)
    assert bad.returncode == 2 and "invalid duration" in bad.stderr


def test_bench_of_a_missing_model_fails_with_the_servers_error(docker_cli, server):
    result = docker_cli.run("model", "bench", "ai/no-such-model", "--duration", "1s",
                            env=server.env, check=False)
    assert result.returncode == 1 and "Error:" in result.stderr
