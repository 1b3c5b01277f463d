"""The kill drill: SIGKILL the server at random points of pull, package, tag, delete and purge;
after each kill the store must pass `model fsck` and list.

Each run: make the operation's precondition, start the operation, kill the server's worker (the
process that writes the store) after a random delay within the operation's normal duration,
wait for gunicorn to start a new worker (which collects what the dead one left), then check:
the listings answer, no entry is broken, fsck finds no fault, and the only garbage left is
partial downloads (kept for resuming). The first run of each operation kills the whole server
(master, worker, scheduler) instead and starts a new one on the same store.

MODELRUNNER_DRILL_RUNS (default 20) runs per operation; MODELRUNNER_DRILL_SECONDS (default 170)
bounds the whole drill: each operation stops early when its share is spent (a warning says so).
MODELRUNNER_DRILL_REPORT names a JSON file for the counts.
"""

import io
import json
import os
import random
import signal
import threading
import time
import warnings

import httpx
import pytest

from modelrunner import model_files, references
from modelrunner.testing import FilesystemStore, Server, write_model_tar, write_small_gguf
from modelrunner_oci import OciSource

from plugins.oci.tests.oci_helpers import put_in_store, random_artifact

pytestmark = pytest.mark.drill

RUNS = int(os.environ.get("MODELRUNNER_DRILL_RUNS", "20"))
SECONDS = float(os.environ.get("MODELRUNNER_DRILL_SECONDS", "170"))
OPERATIONS = ["pull", "package", "tag", "delete", "purge"]
PACKAGED = "ai/drill-packaged"


def _children(pid):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(x) for x in f.read().split()]
        except OSError:
            pass  # a thread that just ended
    return found


class Drill:
    def __init__(self, root, pulled, tar):
        self.root = root
        self.pulled = pulled  # a registry reference
        self.tar = tar        # what `model package` sends
        self.server = None
        self.counts = {}

    # -- the server ------------------------------------------------------------------------------

    def start(self):
        self.server = Server(self.root, env={"MODELRUNNER_PLUGINS": "oci,ollama,openai"}).start()

    def workers(self):
        found = []
        for pid in _children(self.server.process.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"worker" in f.read():
                        found.append(pid)
            except OSError:
                pass  # a child that just ended (a scheduler start, a dead worker being reaped):
                # FileNotFoundError, or ProcessLookupError when /proc/PID is still listed
        return found

    def wait_for(self, not_pids):
        """Until a worker that is not one of ``not_pids`` answers."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(p not in not_pids for p in self.workers()):
                try:
                    if httpx.get(self.server.url + "/version", timeout=2).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.02)
        raise AssertionError("no new worker came up after the kill")

    def kill_worker(self, pids):
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    def kill_server(self):
        os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait()
        self.server.stop()  # waits for the scheduler to notice and go
        self.start()

    # -- operations and their preconditions ------------------------------------------------------

    def http(self, method, path, **kwargs):
        return httpx.request(method, self.server.url + path, timeout=120, **kwargs)

    def has(self, name):
        return self.http("GET", f"/models/{name}").status_code == 200

    def package(self):
        return self.http("POST", "/models/load", params={"tag": PACKAGED},
                         content=self.tar).status_code == 201

    def pull(self):
        with httpx.stream("POST", self.server.url + "/models/create", json={"from": self.pulled},
                          headers={"Accept": "application/json"}, timeout=120) as resp:
            lines = [json.loads(line) for line in resp.iter_lines() if line.strip()]
        return bool(lines) and lines[-1].get("type") == "success"

    def prepare(self, op):
        """The operation's precondition: what it creates is absent, what it changes is there."""
        if op == "pull" and self.has(self.pulled):
            self.http("DELETE", f"/models/{self.pulled}", params={"force": "true"})
        if op == "package" and self.has(PACKAGED):
            self.http("DELETE", f"/models/{PACKAGED}", params={"force": "true"})
        if op in ("tag", "delete", "purge") and not self.has(PACKAGED):
            assert self.package()
        if op == "purge" and not self.has(self.pulled):
            assert self.pull()

    def operation(self, op, run):
        """Run ``op``; True when the server answered that it was done."""
        if op in ("pull", "package"):
            return getattr(self, op)()
        resp = {"tag": lambda: self.http("POST", f"/models/{PACKAGED}/tag",
                                         params={"repo": "team/tagged", "tag": f"r{run}"}),
                "delete": lambda: self.http("DELETE", f"/models/{PACKAGED}",
                                            params={"force": "true"}),
                "purge": lambda: self.http("DELETE", "/models/purge")}[op]()
        return resp.status_code < 300

    # -- the check -------------------------------------------------------------------------------

    def check(self, where):
        for path in ("/models", "/api/tags", "/v1/models"):
            resp = self.http("GET", path)
            assert resp.status_code == 200, f"{where}: {path} answered {resp.status_code}"
        broken = [m for m in self.http("GET", "/models").json() if m.get("broken")]
        assert not broken, f"{where}: broken entries {broken}"
        report = self.http("POST", "/models/fsck", json={"repair": False}).json()
        assert report["ok"] and not report["problems"], f"{where}: fsck found {report['problems']}"
        junk = [g for g in report["garbage"] if g["kind"] != "partial download"]
        assert not junk, f"{where}: left after the restart's collection: {junk}"
        return report


@pytest.fixture(scope="module")
def drill(registry, tmp_path_factory):
    root = tmp_path_factory.mktemp("drill")
    source = FilesystemStore(root / "source")
    artifact = random_artifact(root, 24 << 20, seed=60)
    model = put_in_store(source, artifact, "x")
    pulled = f"{registry.host}/team/drill:v1"
    OciSource().push(references.parse(pulled), model, source, None)
    gguf = write_small_gguf(root / "drill.gguf", name="drill", values=2 << 20)  # 8 MiB
    licence = root / "LICENSE"
    licence.write_text("MIT\n")
    out = io.BytesIO()
    write_model_tar(model_files.build_gguf_artifact(gguf, licenses=[licence]), out)
    d = Drill(root / "models", pulled, out.getvalue())
    d.start()
    yield d
    d.server.stop()
    path = os.environ.get("MODELRUNNER_DRILL_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(d.counts, f, indent=2)


@pytest.mark.parametrize("op", OPERATIONS)
def test_a_kill_at_any_point_leaves_a_store_that_fsck_passes_and_that_lists(drill, op):
    rng = random.Random(f"{op}-{os.environ.get('MODELRUNNER_DRILL_SEED', '')}")
    deadline = time.monotonic() + SECONDS / len(OPERATIONS)
    for _ in range(2):  # the second run times the operation (the first may start the scheduler)
        drill.prepare(op)
        started = time.monotonic()
        assert drill.operation(op, -1)
        duration = time.monotonic() - started
    drill.check(f"{op}, undisturbed")
    started = time.monotonic()
    counts = drill.counts[op] = {"runs": 0, "finished before the kill": 0, "whole server": 0,
                                 "normal seconds": round(duration, 3), "garbage after": 0}
    for run in range(RUNS):
        if run and time.monotonic() > deadline:
            warnings.warn(f"drill: {op} ran {run} of {RUNS} runs within its time share")
            break
        drill.prepare(op)
        whole = run == 0
        pids = drill.workers()
        outcome = {}

        def work():
            try:
                outcome["finished"] = drill.operation(op, run)
            except Exception:
                pass  # the server died under it

        thread = threading.Thread(target=work)
        thread.start()
        time.sleep(rng.uniform(0, duration * 1.2))
        if whole:
            drill.kill_server()
            counts["whole server"] += 1
        else:
            drill.kill_worker(pids)
        thread.join(120)
        if not whole:
            drill.wait_for(pids)
        report = drill.check(f"{op}, run {run}")
        counts["runs"] += 1
        counts["finished before the kill"] += bool(outcome.get("finished"))
        counts["garbage after"] += len(report["garbage"])
    counts["seconds"] = round(time.monotonic() - started, 1)
    print(f"drill {op}: {counts}")
