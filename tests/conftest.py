"""Fixtures shared by every test area: real weights, a real server with SmolLM2 packaged."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.models import smollm2_gguf  # noqa: E402
from tests.support.server import Server  # noqa: E402


@pytest.fixture(scope="session")
def smollm2():
    return smollm2_gguf()


@pytest.fixture(scope="session")
def server(tmp_path_factory, smollm2):
    """One server for the session with SmolLM2 packaged as ai/smollm2. Tests that change global
    state (unload everything, purge) start their own Server instead."""
    srv = Server(tmp_path_factory.mktemp("store") / "models").start()
    srv.package(smollm2, "ai/smollm2")
    yield srv
    srv.stop()
