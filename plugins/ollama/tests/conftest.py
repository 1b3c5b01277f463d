"""Fixtures for the Ollama dialect: the official `ollama` client against a real server.

``client`` talks to the session's shared server (SmolLM2 packaged as ai/smollm2). Tests that
unload runners or change the store use ``own`` instead: a server of their own, on a tmp store.
"""

import ollama
import pytest

from modelrunner.testing import Server

from ollama_helpers import MODEL


@pytest.fixture(scope="session")
def client(server):
    return ollama.Client(host=server.url, timeout=300)


@pytest.fixture(scope="module")
def own(tmp_path_factory, smollm2):
    srv = Server(tmp_path_factory.mktemp("ollama-store") / "models").start()
    srv.package(smollm2, MODEL)
    srv.client = ollama.Client(host=srv.url, timeout=300)
    yield srv
    srv.stop()
