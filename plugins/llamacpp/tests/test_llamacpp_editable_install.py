"""`pip install -e plugins/llamacpp` (what .ci/install runs) ends with a working llama-server.

The install runs the plugin's own PEP 517 backend in pip's isolated build environment, on a copy
of the plugin's source (so this checkout's bin/ is not what is checked), into a fresh venv
without pip (``pip --python``). The finished build in the cache is reused: this never compiles.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelrunner_llamacpp import build

PLUGIN = Path(__file__).resolve().parents[1]


def test_an_editable_install_ends_with_a_working_llama_server(tmp_path, monkeypatch):
    for var in ("MODELRUNNER_LLAMA_SERVER_PATH", "LLAMA_SERVER_PATH", "CMAKE_ARGS"):
        monkeypatch.delenv(var, raising=False)
    if not build._runnable(build.cached_binary()):
        pytest.fail(f"no finished build in {build.cached_binary()}: run modelrunner-llamacpp-build "
                    f"(this test reuses it; it never compiles)")
    source = tmp_path / "llamacpp"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns(
        "bin", "build", "*.egg-info", "__pycache__", "tests"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv"], check=True)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}   # the venv's own view
    venv_python = tmp_path / "venv" / "bin" / "python"
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", venv_python, "install",
                          "--no-deps", "-e", source], env=clean, capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    binary = source / "modelrunner_llamacpp" / "bin" / "llama-server"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "version:" in version.stdout + version.stderr
    assert build.read_build_info(binary)["llama_cpp_python"] == build.LLAMA_CPP_PYTHON_VERSION
    # the installed package finds it first (modelrunner itself is not in this venv: ask by path)
    located = subprocess.run(
        [venv_python, "-c",
         "import importlib.util; print(importlib.util.find_spec('modelrunner_llamacpp').origin)"],
        env=clean, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(located).parent / "bin" / "llama-server" == binary
