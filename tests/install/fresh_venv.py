"""A fresh virtual environment for install checks: made with ``python -m venv --without-pip``
(no --system-site-packages) and driven with this interpreter's pip (``pip --python``), so
nothing of the CI environment leaks in and no pip is installed into each venv.

Used by test_fresh_venv_install.py and bench/install.py (which prints install times and sizes).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.install.distributions import ROOT, canonical

LIGHT_PLUGINS = ("llamacpp", "openai", "ollama", "oci", "huggingface", "prometheus", "anthropic",
                 "web")


def clean_environ(**extra):
    """This process's environment without what would point a venv at our checkout or at the
    CI's server and store (PYTHONPATH, MODELRUNNER_*, MODEL_RUNNER_*, MODELS_PATH)."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith(("MODELRUNNER_", "MODEL_RUNNER_", "VIRTUAL_ENV"))
           and k not in ("MODELS_PATH", "LLAMA_SERVER_PATH", "CMAKE_ARGS")}
    env.update(extra)
    return env


def pip(*args, python=None, check=True):
    """This interpreter's pip, acting on ``python``'s environment when given."""
    target = ["--python", str(python)] if python else []
    out = subprocess.run([sys.executable, "-m", "pip", *target, *map(str, args)],
                         env=clean_environ(), capture_output=True, text=True)
    if check and out.returncode != 0:
        raise AssertionError(f"pip {' '.join(map(str, args))} failed:\n{out.stdout}{out.stderr}")
    return out


def build_wheels(wheelhouse, projects):
    """Wheels of our ``projects`` (folders) and every third-party wheel they need, into
    ``wheelhouse``, in one pip resolve (third-party wheels come from pip's cache). Each project
    is built from a copy: setuptools leaves build/ and *.egg-info behind in the folder it
    builds, and a stale build/lib would carry removed modules into later wheels."""
    wheelhouse = Path(wheelhouse)
    sources = Path(tempfile.mkdtemp(prefix="sources-", dir=wheelhouse.parent))
    copies = [source_copy(p, sources / f"{i}-{p.name}") for i, p in enumerate(projects)]
    pip("wheel", "--quiet", "--wheel-dir", wheelhouse, *copies)
    return wheelhouse


def source_copy(folder, target):
    """What a distribution's build reads, without tests, build outputs or shipped binaries."""
    skip = shutil.ignore_patterns("tests", "build", "dist", "*.egg-info", "__pycache__", "bin",
                                  ".git", "plugins", "examples", "bench", "deploy", "docs")
    shutil.copytree(folder, target, ignore=skip)
    return target


def project(name):
    """The folder of a distribution: "core" is the repository root, else plugins/<name>."""
    return ROOT if name == "core" else ROOT / "plugins" / name


class Venv:
    def __init__(self, path):
        self.path = Path(path)
        self.python = self.path / "bin" / "python"

    def create(self):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(self.path)],
                       check=True, env=clean_environ())
        return self

    @property
    def site_packages(self):
        return next(self.path.glob("lib/python3*/site-packages"))

    def install(self, *requirements, wheelhouse=None):
        where = ["--no-index", "--find-links", wheelhouse] if wheelhouse else []
        return pip("install", "--quiet", *where, *requirements, python=self.python)

    def distributions(self):
        """{canonical name: version} of what is installed, from the dist-info folders."""
        found = {}
        for info in self.site_packages.glob("*.dist-info"):
            name, _, version = info.name[:-len(".dist-info")].partition("-")
            found[canonical(name)] = version
        return found

    def uninstall(self, *names):
        if names:
            pip("uninstall", "--quiet", "--yes", *names, python=self.python)

    def check(self):
        """`pip check`: (ok, its output)."""
        out = pip("check", python=self.python, check=False)
        return out.returncode == 0, out.stdout + out.stderr

    def size(self):
        """Bytes on disk under site-packages, as du counts them."""
        total = 0
        for root, _, files in os.walk(self.site_packages):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_blocks * 512
                except OSError:
                    continue
        return total

    def model(self, *args, env, check=True, timeout=120):
        """The venv's `model` command."""
        out = subprocess.run([str(self.path / "bin" / "model"), *map(str, args)], env=env,
                             capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"model {' '.join(map(str, args))} failed "
                                 f"({out.returncode}):\n{out.stdout}{out.stderr}")
        return out

    def environ(self, home, port):
        """The environment a user of this venv has: its bin first, its own store and port."""
        return clean_environ(PATH=f"{self.path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                             VIRTUAL_ENV=str(self.path), MODELS_PATH=str(home / "models"),
                             MODEL_RUNNER_HOST=f"http://127.0.0.1:{port}",
                             MODELRUNNER_PORT=str(port))


def serve_detached(venv, env, port):
    """`model serve --detach`; returns the server's pid (its session leader)."""
    out = venv.model("serve", "--detach", "--port", port, env=env, timeout=60)
    match = re.search(r"\(pid (\d+),", out.stdout)
    assert match, out.stdout + out.stderr
    return int(match.group(1))


def _watchers(pid):
    """Pids of scheduler daemons watching the server ``pid`` (they have sessions of their own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if b"modelrunner.scheduler.daemon" in argv[:3] and b"--watch-pid" in argv \
                and argv[argv.index(b"--watch-pid") + 1:][:1] == [str(pid).encode()]:
            found.append(int(entry.name))
    return found


def _alive(pid):
    """Running, not a zombie that nobody has reaped yet (the server's parent is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _signal(kill, target, sig):
    try:
        kill(target, sig)
        return True
    except ProcessLookupError:
        return False


def stop_server(pid, timeout=30):
    """SIGTERM to the server's session (gunicorn and its workers); the scheduler daemon, in a
    session of its own, sees the master go and stops. Waits until none of them is left, then
    SIGKILLs what is."""
    watchers = _watchers(pid)
    _signal(os.killpg, pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in (pid, *watchers)):
            return
        time.sleep(0.1)
    _signal(os.killpg, pid, signal.SIGKILL)
    for w in watchers:
        _signal(os.kill, w, signal.SIGKILL)


def plugins_json(venv, env):
    return json.loads(venv.model("plugins", "--json", env=env).stdout)
