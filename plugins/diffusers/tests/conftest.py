"""Fixtures for the diffusers engine tests: a tiny random Stable Diffusion pipeline (directory and
DDUF), packaged into the session server as ai/tiny-sd and ai/tiny-sd-dduf."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

INSTALL = ("pip install torch==2.13.0 (the CPU wheel; never unpinned) -e plugins/diffusers")


def require_diffusers():
    """Fails (never skips) when the engine's runtime is missing, saying how to install it."""
    missing = [m for m in ("torch", "diffusers", "transformers", "modelrunner_diffusers")
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: {INSTALL}")


@pytest.fixture(scope="session")
def tiny_sd_files(tmp_path_factory):
    """(pipeline directory, .dduf file or None): built in a subprocess, so pytest never imports
    torch."""
    require_diffusers()
    root = tmp_path_factory.mktemp("tiny-sd")
    folder, dduf = root / "tiny-sd", root / "tiny-sd.dduf"
    result = subprocess.run([sys.executable, "-m", "plugins.diffusers.tests.tiny_sd", str(folder),
                             "--dduf", str(dduf)], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    if result.returncode not in (0, 3):
        pytest.fail(f"building the tiny pipeline failed:\n{result.stdout}\n{result.stderr}")
    return folder, (dduf if result.returncode == 0 and dduf.is_file() else None)


@pytest.fixture(scope="session")
def tiny_sd_dir(tiny_sd_files):
    return tiny_sd_files[0]


@pytest.fixture(scope="module")
def image_model(server, tiny_sd_dir):
    """ai/tiny-sd in the session server; unloaded afterwards (a torch runner holds ~0.5 GB)."""
    server.model("package", "--safetensors-dir", str(tiny_sd_dir), "ai/tiny-sd")
    yield "ai/tiny-sd"
    server.model("unload", "--backend", "diffusers", check=False)


@pytest.fixture(scope="module")
def openai_client(server):
    import openai

    return openai.OpenAI(base_url=server.url + "/engines/v1", api_key="modelrunner",
                         timeout=600, max_retries=0)
