"""A real modelrunner server for tests: `model serve` (gunicorn, gevent workers) on a free port,
with its own store, started and stopped like a user would."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``Server(models_path).start()``; ``.url``, ``.env`` (for CLI calls), ``.stop()``.

    ``tls=(cert, key)`` serves https with that pair; ``.verify`` is then the certificate, for
    httpx's ``verify=`` (and MODEL_RUNNER_TLS_CA in ``.env`` for the CLI).
    """

    def __init__(self, models_path, port=None, workers=1, env=None, tls=None):
        self.models_path = Path(models_path)
        self.port = port or free_port()
        self.workers = workers
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.verify = str(tls[0]) if tls else True
        extra = ({"MODEL_RUNNER_TLS_CERT": str(tls[0]), "MODEL_RUNNER_TLS_KEY": str(tls[1]),
                  "MODEL_RUNNER_TLS_CA": str(tls[0])} if tls else {})
        self.env = dict(os.environ, MODELS_PATH=str(self.models_path),
                        MODEL_RUNNER_HOST=self.url, MODELRUNNER_PORT=str(self.port),
                        **extra, **(env or {}))
        self.process = None
        self.log_path = self.models_path / "server-test.log"

    def start(self, timeout=30):
        self.models_path.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelrunner.cli", "serve", "--port", str(self.port),
             "--workers", str(self.workers)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                # GET / needs no API key, whatever the server's keys
                if httpx.get(self.url + "/", timeout=1, verify=self.verify).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # the scheduler daemon notices the master is gone within a second and stops runners
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _scheduler_alive(self.models_path):
            time.sleep(0.1)

    def model(self, *args, check=True, input=None, timeout=300):
        """Run the `model` CLI against this server; returns CompletedProcess (text)."""
        result = subprocess.run([sys.executable, "-m", "modelrunner.cli", *args], env=self.env,
                                capture_output=True, text=True, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"model {' '.join(args)} failed: {result.stderr}{result.stdout}")
        return result

    def package(self, gguf, name, *extra):
        return self.model("package", "--gguf", str(gguf), name, *extra)

    def runner_argv(self, model):
        """The real command line of ``model``'s runner (from /proc), loaded by a 2-token chat:
        what a configuration became once the engine started."""
        chat = httpx.post(self.url + "/engines/v1/chat/completions", timeout=120,
                          json={"model": model, "max_tokens": 2,
                                "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200, chat.text
        name = model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"
        [runner] = [r for r in httpx.get(self.url + "/engines/ps", timeout=30).json()
                    if r["model_name"].endswith(name)]
        return [a.decode() for a in Path(f"/proc/{runner['pid']}/cmdline").read_bytes()
                .split(b"\0")]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _scheduler_alive(models_path):
    from modelrunner.scheduler.scheduler import socket_dir
    sock = socket_dir(str(Path(models_path).resolve())) / "scheduler.sock"
    return sock.exists()
