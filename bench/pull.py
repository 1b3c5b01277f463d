"""Pull throughput of the OCI source against a local registry, next to `curl -o` of the same blob.

    python bench/pull.py [--size-mb 500] [--rounds 3] [--cache ~/.cache/modelrunner-bench]

Starts Debian's docker-registry on 127.0.0.1 (storage in a temp dir), pushes a model whose one
layer is SIZE MB of random bytes (generated once into the cache dir, outside the repository),
then, each round, in turn:

* `curl -o` of that blob;
* `OciSource.pull` into an empty store, in a subprocess whose peak RSS is read from VmHWM in
  /proc/self/status (ru_maxrss would also count the forked parent's memory from before exec);
* the same with the store's `fsync_blobs` on;
* `POST /models/create` to a running `model serve` (gunicorn, gevent worker): what `model pull`
  does, without the CLI's start-up.

Every step first writes and deletes a scratch file of the same size. On this VM, writing into
page cache that no file used before is 5-10x slower than reusing freed pages (the hypervisor
backs new memory on first touch), which made single runs swing from 340 to 1030 MB/s; with the
scratch file each writer, curl included, starts from the same state. Prints MB/s per round, the
medians, pull as a share of curl, and the ceiling this machine puts on a pull that verifies
sha256: (CPU-seconds of curl and the registry + CPU-seconds of sha256) / cores.
Needs: apt-get install -y docker-registry curl; pip install -e . -e plugins/oci.
"""

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "plugins" / "oci" / "tests"))
sys.path.insert(0, str(HERE.parent))

CHILD = r"""
import json, sys, time
from modelrunner import reference
from modelrunner.sources import Progress
from modelrunner.store import FilesystemStore
from modelrunner_oci import OciSource
store = FilesystemStore(sys.argv[2], fsync=sys.argv[3] == "fsync")
started = time.perf_counter()
model = OciSource().pull(reference.parse(sys.argv[1]), store, Progress(lambda m: None))
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "id": model.id,
                  "maxrss_kb": int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])}))
"""


def process_cpu(pid):
    """User + system CPU seconds of a running process, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reuse_freed_pages(directory, size):
    """Write and delete ``size`` bytes, so the next writer gets recycled page cache."""
    scratch = Path(directory) / "scratch"
    block = b"\0" * (4 << 20)
    with open(scratch, "wb") as f:
        for _ in range(0, size, len(block)):
            f.write(block)
    scratch.unlink()
    os.sync()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/modelrunner-bench"))
    args = parser.parse_args()
    size = args.size_mb * 1000 * 1000

    import httpx
    import pytest  # noqa: F401  (oci_registry uses pytest.fail for a missing binary)
    from oci_registry import start_registry, stop_registry
    from oci_helpers import put_in_store, random_artifact

    from modelrunner import reference
    from modelrunner.store import FilesystemStore
    from modelrunner_oci import OciSource
    from modelrunner.testing.server import Server

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    artifact = random_artifact(cache, size, seed=500)
    print(f"layer ready ({size / 1e6:.0f} MB, {time.perf_counter() - t:.1f}s)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        registry = start_registry(tmp / "registry")
        server = Server(tmp / "server-store").start()
        try:
            source_store = FilesystemStore(tmp / "source-store")
            model = put_in_store(source_store, artifact, "bench/model:v1")
            target = f"{registry.host}/bench/model:v1"
            t = time.perf_counter()
            OciSource().push(reference.parse(target), model, source_store, None)
            push_s = time.perf_counter() - t
            print(f"push:            {size / 1e6 / push_s:8.1f} MB/s  ({push_s:.2f}s)")
            blob_url = f"http://{registry.host}/v2/bench/model/blobs/{artifact.layers[0].digest}"
            results = {"curl -o": [], "pull": [], "pull, fsync": [], "server pull": []}
            rss = []

            cpu_seconds = []

            def curl(n):
                out = tmp / f"curl-{n}.out"
                registry_before = process_cpu(registry.process.pid)
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                subprocess.run(["curl", "-sf", "-o", str(out), blob_url], check=True)
                seconds = time.perf_counter() - t
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu_seconds.append(after.ru_utime + after.ru_stime - children.ru_utime
                                   - children.ru_stime
                                   + process_cpu(registry.process.pid) - registry_before)
                assert out.stat().st_size == size
                out.unlink()
                return seconds

            def pull(n, fsync=False):
                result = subprocess.run(
                    [sys.executable, "-c", CHILD, target, str(tmp / f"pull-{n}-{fsync}"),
                     "fsync" if fsync else "-"], check=True, capture_output=True, text=True)
                pulled = json.loads(result.stdout.strip().splitlines()[-1])
                assert pulled["id"] == model.id
                rss.append(pulled["maxrss_kb"] / 1024)
                subprocess.run(["rm", "-rf", str(tmp / f"pull-{n}-{fsync}")], check=True)
                return pulled["seconds"]

            def server_pull(n):
                t = time.perf_counter()
                answer = httpx.post(server.url + "/models/create", json={"from": target},
                                    timeout=600)
                seconds = time.perf_counter() - t
                assert answer.status_code == 200, answer.text
                assert httpx.delete(f"{server.url}/models/{target}").status_code == 200
                return seconds

            steps = {"curl -o": curl, "pull": pull, "pull, fsync": lambda n: pull(n, True),
                     "server pull": server_pull}
            for n in range(args.rounds):
                figures = []
                for name, step in steps.items():
                    reuse_freed_pages(tmp, size)
                    seconds = step(n)
                    results[name].append(size / 1e6 / seconds)
                    figures.append(f"{name} {results[name][-1]:.0f}")
                print(f"round {n + 1}: " + ", ".join(figures) + " MB/s")
            curl_median = statistics.median(results["curl -o"])
            for name, values in results.items():
                median = statistics.median(values)
                print(f"{name + ':':16} {median:8.1f} MB/s median  ({median / curl_median:.0%} "
                      f"of curl)  [{', '.join(f'{v:.0f}' for v in values)}]")
            print("pull: sha256 verified before a blob enters the store; peak RSS of the pull "
                  f"process {max(rss):.0f} MiB")
            # What the machine allows: curl and the registry keep the cores busy for
            # cpu_seconds; a verifying pull adds sha256 of every byte on top.
            block = os.urandom(4 << 20)
            digest = hashlib.sha256()
            t = time.perf_counter()
            for _ in range(0, size, len(block)):
                digest.update(block)
            sha_s = time.perf_counter() - t
            cores = len(os.sched_getaffinity(0))
            curl_cpu = statistics.median(cpu_seconds)
            ceiling = size / 1e6 / max((curl_cpu + sha_s) / cores, size / 1e6 / curl_median)
            print(f"ceiling: curl + registry use {curl_cpu:.2f} CPU-s, sha256 {sha_s:.2f} CPU-s "
                  f"({size / 1e6 / sha_s:.0f} MB/s); on {cores} cores a verifying pull can reach "
                  f"at most {ceiling:.0f} MB/s ({ceiling / curl_median:.0%} of curl)")
        finally:
            server.stop()
            stop_registry(registry)


if __name__ == "__main__":
    main()
