"""Start llama-server runners the way the scheduler does, without the scheduler.

A test builds a Bundle by hand (a directory with model/model.gguf hardlinked or copied and a config
dict), asks the engine for its RunnerCommand, starts it, and waits for GET /health on the Unix
socket, as DMR's loader does.
"""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from modelrunner import Bundle, RunnerConfig


def make_bundle(root, gguf, config=None, model_id="test-model", extra_files=()):
    """A bundle directory ``root`` with ``gguf`` linked as model/model.gguf."""
    root = Path(root)
    model_dir = root / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / "model.gguf"
    if not target.exists():
        try:
            os.link(gguf, target)
        except OSError:
            shutil.copyfile(gguf, target)
    for name, text in extra_files:
        (model_dir / name).write_text(text)
    return Bundle(model_id=model_id, path=root, config=dict(config or {"format": "gguf"}))


def short_socket_dir():
    """A directory short enough for a Unix socket path (108 bytes), under /tmp."""
    return Path(tempfile.mkdtemp(prefix="mr-llama-", dir="/tmp"))


class Runner:
    """One llama-server process started from an engine's RunnerCommand."""

    def __init__(self, engine, bundle, config=None):
        self.engine = engine
        self.bundle = bundle
        self.config = config or RunnerConfig()
        self.dir = short_socket_dir()
        self.socket = str(self.dir / "runner.sock")
        self.command = engine.runner_command(bundle, self.config, self.socket)
        self.stderr_path = self.dir / "stderr.log"
        self.proc = None
        self.load_seconds = None

    def start(self, timeout=120):
        env = dict(os.environ, **self.command.env)
        started = time.monotonic()
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.command.argv, stdout=subprocess.DEVNULL, stderr=err,
                                         env=env)
        deadline = started + timeout
        with self.client(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return self  # exited: the caller looks at returncode and stderr
                try:
                    if client.get(self.command.health_path).status_code == 200:
                        self.load_seconds = time.monotonic() - started
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"llama-server not healthy after {timeout}s:\n{self.stderr}")

    def wait_exit(self, timeout=60):
        return self.proc.wait(timeout=timeout)

    @property
    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def client(self, timeout=120):
        return httpx.Client(transport=httpx.HTTPTransport(uds=self.socket),
                            base_url="http://runner", timeout=timeout)

    def rss_bytes(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def require_llama_server(engine):
    ok, details = engine.installed()
    if not ok:
        pytest.fail(f"llama-server is not available ({details}); build it with "
                    f"`modelrunner-llamacpp-build` (pip install -e plugins/llamacpp first)",
                    pytrace=False)
    return details


def write_without_chat_template(src, dst):
    """A copy of the GGUF ``src`` at ``dst`` with every key/value and tensor but
    ``tokenizer.chat_template``: a model as some converters publish it, templateless."""
    import gguf

    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if (field.name in (gguf.Keys.General.ARCHITECTURE, gguf.Keys.Tokenizer.CHAT_TEMPLATE)
                or field.name.startswith("GGUF.")):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub_type)
    for tensor in reader.tensors:
        writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype,
                               tensor.data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()
    return Path(dst)
