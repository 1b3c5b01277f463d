"""GET /metrics against a real server running SmolLM2: vLLM-named request metrics moved by exactly
what the runner reported, runner gauges, llama-server's own metrics merged in, and counts that add
up across gunicorn workers (prometheus_client multiprocess mode)."""

import threading

import httpx

from modelrunner.testing import Server
from tests.telemetry.telemetry_helpers import (MODEL, chat, label_values, metric_file_pids, scrape, total,
                               worker_pids)

LABEL = "ai/smollm2"


def test_metrics_follow_two_chats(server):
    chat(server, "Warm up.")  # the runner is loaded before the baseline
    before, _ = scrape(server)
    _, usage1 = chat(server, "Say hello.")
    _, usage2 = chat(server, "Count to three.", stream=True)
    assert usage1 and usage2
    after, families = scrape(server)

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    prompt = usage1["prompt_tokens"] + usage2["prompt_tokens"]
    generated = usage1["completion_tokens"] + usage2["completion_tokens"]
    assert delta("modelrunner:prompt_tokens_total", model=LABEL) == prompt
    assert delta("modelrunner:generation_tokens_total", model=LABEL) == generated
    assert delta("modelrunner:request_success_total", model=LABEL) == 2
    assert label_values(after, "modelrunner:request_success_total", "finished_reason") & {
        "length", "stop"}
    for hist in ("modelrunner:e2e_request_latency_seconds",
                 "modelrunner:time_to_first_token_seconds"):
        assert delta(hist + "_count", model=LABEL) == 2, hist
        assert delta(hist + "_sum", model=LABEL) > 0
        assert total(after, hist + "_bucket", model=LABEL, le="+Inf") == \
            total(after, hist + "_count", model=LABEL)
    # the streamed answer had several content chunks: one gap between each
    assert delta("modelrunner:inter_token_latency_seconds_count", model=LABEL) >= 2

    # the request metrics name the model
    for name in ("modelrunner:prompt_tokens_total", "modelrunner:e2e_request_latency_seconds_count"):
        assert LABEL in label_values(after, name, "model")

    # runner gauges, computed from the scheduler at scrape time
    assert total(after, "modelrunner:loaded_models") >= 1
    assert total(after, "modelrunner:runner_memory_bytes", model=LABEL, backend="llama.cpp",
                 mode="completion") > 0
    assert total(after, "modelrunner:runner_loading", model=LABEL) == 0
    assert total(after, "modelrunner:num_requests_running", model=LABEL) == 0
    assert total(after, "modelrunner:num_requests_waiting", model=LABEL) == 0
    assert total(after, "modelrunner:load_duration_seconds_count", model=LABEL) >= 1
    types = {f.name: f.type for f in families}
    assert types["modelrunner:num_requests_running"] == "gauge"
    assert types["modelrunner:time_to_first_token_seconds"] == "histogram"
    assert types["modelrunner:prompt_tokens"] == "counter"

    # llama-server's own metrics, merged with backend/model/mode labels
    engine = {n for (n, ls) in after if n.startswith("llamacpp:")}
    assert engine, "no llamacpp: metrics merged in"
    labels = {ls for (n, ls) in after if n.startswith("llamacpp:")}
    # other tests in the session may have loaded the model in embedding mode too: every merged
    # line names its runner, and the chat runner's lines are there
    assert all({"backend", "model", "mode"} <= {k for k, _ in ls} for ls in labels)
    assert any({("backend", "llama.cpp"), ("model", LABEL), ("mode", "completion")} <= set(ls)
               for ls in labels)
    assert total(after, "llamacpp:tokens_predicted_total", model=LABEL) >= generated


def test_metrics_add_up_across_workers(tmp_path, smollm2):
    srv = Server(tmp_path / "models", workers=2).start()
    try:
        srv.package(smollm2, MODEL)
        masters_workers = set(worker_pids(srv.process.pid))
        assert len(masters_workers) == 2
        results, lock = [], threading.Lock()

        def one(i):
            out = chat(srv, f"Name a colour, number {i}.", stream=bool(i % 2), max_tokens=8)
            with lock:
                results.append(out[1])

        # concurrent connections, in rounds, until both workers served some
        for _ in range(6):
            threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            served = metric_file_pids(tmp_path / "models" / "metrics") & masters_workers
            if len(served) == 2:
                break
        assert len(served) == 2, "one worker served every request"
        samples, _ = scrape(srv)
        assert total(samples, "modelrunner:request_success_total", model=LABEL) == len(results)
        assert total(samples, "modelrunner:e2e_request_latency_seconds_count",
                     model=LABEL) == len(results)
        assert total(samples, "modelrunner:prompt_tokens_total", model=LABEL) == sum(
            u["prompt_tokens"] for u in results)
        assert total(samples, "modelrunner:generation_tokens_total", model=LABEL) == sum(
            u["completion_tokens"] for u in results)
        # every worker answers /metrics with the same totals
        for _ in range(4):
            again, _ = scrape(srv)
            assert total(again, "modelrunner:generation_tokens_total", model=LABEL) == sum(
                u["completion_tokens"] for u in results)
    finally:
        srv.stop()


def test_metrics_without_runners(tmp_path):
    with Server(tmp_path / "models") as srv:
        resp = httpx.get(srv.url + "/metrics")
        assert resp.status_code == 200
        samples, _ = scrape(srv)
        assert total(samples, "modelrunner:loaded_models") == 0
