"""Idle streams against one gevent worker: N concurrent followers of each kind, the server's RSS,
and the latency of GET /models meanwhile.

    python bench/streams.py [--counts 1000,5000,10000] [--kinds inspector,logs] [--requests 200]

Starts a server (`model serve`, one worker) on an empty store in a temp dir, raises this
process's open-files limit, then for each kind and count: opens the streams in batches of 500
(raw sockets, one selector), waits for each stream's headers and reads what it was sent (as
a follower would: a client that does not read keeps the server's unsent bytes alive), reads the RSS of the server's
processes (gunicorn master + worker; the scheduler is not started by these routes), times
--requests sequential GET /models on a keep-alive connection (p50/p95), and closes the streams.
Kinds: ``inspector`` = GET /engines/requests (Accept: text/event-stream), ``logs`` =
GET /logs?follow=true. Chat SSE streams are not measured: a live chat holds a runner slot, so
10,000 of them measure the runner, not the server.

Figures, 2 shared cores (other work running), one gevent worker, RSS = gunicorn master + worker
(the worker alone in brackets), GET /models p50 / p95 with the streams open:

                          before (f891cae)                after (this branch)
    no streams            216 MiB (121)  1.2 / 1.5 ms     216 MiB (121)  1.4 / 5.7 ms
    inspector   1,000     230 MiB (121)  1.3 / 3.0 ms     232 MiB (121)  3.0 / 10.1 ms
    inspector   5,000     -  (worker_connections 1000)    300 MiB (179)  1.6 / 8.0 ms
    inspector  10,000     -                               303 MiB (181)  0.9 / 2.9 ms
    logs        1,000     263 MiB (141)  2.4 / 13.5 ms    232 MiB (121)  3.5 / 12.1 ms
    logs        5,000     -                               296 MiB (175)  4.9 / 27.5 ms
    logs       10,000     -                               310 MiB (188)  1.6 / 19.9 ms

Per stream: inspector 14.5 KiB before, 9-17 KiB after; /logs?follow 47.8 KiB before (its
snapshot of the logs stayed in each follower), 10-16 KiB after. Opening 10,000 streams takes 23 s
(inspector) and 54 s (logs: each follower is sent the whole log, which holds an access line for
every stream closed earlier in the run). The 300 MB aim is met by the worker (181-188 MiB) but
not by master + worker (303-310 MiB): the master alone is ~95 MiB, as it imports every plugin
for on_starting; the streams themselves are ~90 MiB of it. p50 stays under 20 ms throughout.
"""

import argparse
import os
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))

import httpx  # noqa: E402
import psutil  # noqa: E402

from modelrunner.testing import Server  # noqa: E402

PATHS = {"inspector": ("/engines/requests", "Accept: text/event-stream\r\n"),
         "logs": ("/logs?follow=true", "")}
BATCH = 500


def raise_open_files(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_streams(port, kind, count, deadline):
    """``count`` sockets, each past its first chunk; returns them and the seconds it took."""
    path, extra = PATHS[kind]
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n").encode()
    sockets, started = [], time.monotonic()
    while len(sockets) < count:
        batch = []
        for _ in range(min(BATCH, count - len(sockets))):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request)
            s.setblocking(False)
            batch.append(s)
        selector = selectors.DefaultSelector()
        for s in batch:
            selector.register(s, selectors.EVENT_READ)
        waiting = set(batch)
        while True:  # every stream past its headers, and what was sent so far read (drained)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind}: {len(sockets) + len(batch) - len(waiting)} of "
                                   f"{count} streams answered in time")
            ready = selector.select(timeout=0.3)
            for key, _ in ready:
                if key.fileobj.recv(1 << 20):
                    waiting.discard(key.fileobj)
            if not waiting and not ready:
                break
        selector.close()
        sockets += batch
    return sockets, time.monotonic() - started


def server_rss(server):
    """(RSS of the gunicorn master and worker together, RSS of the worker alone)."""
    root = psutil.Process(server.process.pid)
    procs = [root] + root.children(recursive=True)
    gunicorn = [p for p in procs if "scheduler" not in " ".join(p.cmdline())]
    worker = max(gunicorn, key=lambda p: p.memory_info().rss)  # the one holding the streams
    return sum(p.memory_info().rss for p in gunicorn), worker.memory_info().rss


def latencies(url, n):
    out = []
    with httpx.Client(timeout=30) as client:
        client.get(url + "/models")
        for _ in range(n):
            t = time.perf_counter()
            assert client.get(url + "/models").status_code == 200
            out.append((time.perf_counter() - t) * 1000)
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.95) - 1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1000,5000,10000")
    parser.add_argument("--kinds", default="inspector,logs")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300, help="per step, seconds")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    limit = raise_open_files(max(counts) + 1024)
    print(f"open-files limit here: {limit}")
    print(f"{'kind':10} {'streams':>8} {'open s':>7} {'RSS MiB':>8} {'worker':>7} "
          f"{'KiB/stream':>10} {'p50 ms':>7} {'p95 ms':>7}")
    for kind in args.kinds.split(","):
        run_kind(kind, counts, args)


def run_kind(kind, counts, args):
    """One fresh server per kind: malloc keeps what an earlier kind's streams used."""
    with tempfile.TemporaryDirectory(prefix="mrb") as tmp:
        server = Server(Path(tmp) / "models").start()
        try:
            idle, idle_worker = server_rss(server)
            p50, p95 = latencies(server.url, args.requests)
            print(f"{kind:10} {0:8} {0:7.1f} {idle / 2**20:8.0f} {idle_worker / 2**20:7.0f} "
                  f"{0:10.1f} {p50:7.1f} {p95:7.1f}", flush=True)
            for count in counts:
                deadline = time.monotonic() + args.timeout
                try:
                    streams, took = open_streams(server.port, kind, count, deadline)
                except (TimeoutError, OSError) as e:
                    print(f"{kind:10} {count:8} failed: {e}")
                    continue
                time.sleep(2)  # let the worker settle
                rss, worker = server_rss(server)
                p50, p95 = latencies(server.url, args.requests)
                print(f"{kind:10} {count:8} {took:7.1f} {rss / 2**20:8.0f} "
                      f"{worker / 2**20:7.0f} {(rss - idle) / count / 1024:10.1f} "
                      f"{p50:7.1f} {p95:7.1f}", flush=True)
                for s in streams:
                    s.close()
                time.sleep(7)  # idle followers notice a closed client within 5 s
        finally:
            server.stop()


if __name__ == "__main__":
    main()
