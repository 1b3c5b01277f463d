"""Pull throughput of the OCI source against a local registry, next to `curl -o` of the same blob.

    python bench/pull.py [--size-mb 500] [--cache ~/.cache/modelrunner-bench]

Starts Debian's docker-registry on 127.0.0.1 (storage in a temp dir), pushes a model whose one
layer is SIZE MB of random bytes (generated once into the cache dir, outside the repository),
then, in one run: `curl -o` of that blob, and `OciSource.pull` into an empty store in a
subprocess, whose peak RSS is read from VmHWM in /proc/self/status: ru_maxrss would also count the
forked parent's memory from before exec. Prints MB/s for both.
Needs: apt-get install -y docker-registry curl; pip install -e plugins/oci.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "oci"))

CHILD = r"""
import json, resource, sys, time
from modelrunner import reference
from modelrunner.sources import Progress
from modelrunner.store import FilesystemStore
from modelrunner_oci import OciSource
store = FilesystemStore(sys.argv[2])
started = time.perf_counter()
model = OciSource().pull(reference.parse(sys.argv[1]), store, Progress(lambda m: None))
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "id": model.id,
                  "maxrss_kb": int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/modelrunner-bench"))
    args = parser.parse_args()
    size = args.size_mb * 1000 * 1000

    import pytest  # noqa: F401  (conftest uses pytest.fail for a missing binary)
    from oci_registry import start_registry, stop_registry
    from oci_helpers import put_in_store, random_artifact

    from modelrunner import reference
    from modelrunner.store import FilesystemStore
    from modelrunner_oci import OciSource

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    artifact = random_artifact(cache, size, seed=500)
    print(f"layer ready ({size / 1e6:.0f} MB, {time.perf_counter() - t:.1f}s)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = start_registry(tmp / "registry")
        try:
            source_store = FilesystemStore(tmp / "source-store")
            model = put_in_store(source_store, artifact, "bench/model:v1")
            target = f"{server.host}/bench/model:v1"
            t = time.perf_counter()
            OciSource().push(reference.parse(target), model, source_store, None)
            push_s = time.perf_counter() - t
            print(f"push:    {size / 1e6 / push_s:8.1f} MB/s  ({push_s:.2f}s)")

            digest = artifact.layers[0].digest
            out = tmp / "curl.out"

            def curl():
                os.sync()  # same start for each: no dirty pages from the step before
                t = time.perf_counter()
                subprocess.run(["curl", "-sf", "-o", str(out),
                                f"http://{server.host}/v2/bench/model/blobs/{digest}"], check=True)
                seconds = time.perf_counter() - t
                assert out.stat().st_size == size
                out.unlink()
                print(f"curl -o: {size / 1e6 / seconds:8.1f} MB/s  ({seconds:.2f}s)")

            curl()
            os.sync()
            result = subprocess.run([sys.executable, "-c", CHILD, target, str(tmp / "pull-store")],
                                    check=True, capture_output=True, text=True)
            pulled = json.loads(result.stdout.strip().splitlines()[-1])
            assert pulled["id"] == model.id
            print(f"pull:    {size / 1e6 / pulled['seconds']:8.1f} MB/s  ({pulled['seconds']:.2f}s, "
                  f"sha256 verified, fsync'd)  peak RSS of the pull process "
                  f"{pulled['maxrss_kb'] / 1024:.0f} MiB")
            curl()
        finally:
            stop_registry(server)


if __name__ == "__main__":
    main()
