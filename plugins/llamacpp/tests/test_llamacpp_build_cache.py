"""The llama-server build cache is only reused when nobody else could have put the binary there
and it was built for this machine: a wheel built from a poisoned cache would ship that binary."""

import json
import os
import platform

import pytest

from modelrunner_llamacpp import build


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("MODELRUNNER_CACHE_DIR", str(root))
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    binary = build.cached_binary(extra=())
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\necho llama-server\n")
    binary.chmod(0o755)
    for folder in (binary.parent, binary.parent.parent, binary.parent.parent.parent, root):
        folder.chmod(0o755)
    return binary


def test_a_finished_build_of_this_user_for_this_machine_is_reused(cache):
    (cache.parent / "build-info.json").write_text(json.dumps({"machine": platform.machine()}))
    assert build.cache_usable(cache)


def test_a_cache_others_can_write_to_is_not_trusted(cache):
    cache.parent.parent.chmod(0o777)  # another local user could have replaced the binary
    assert not build.cache_usable(cache)
    cache.parent.parent.chmod(0o755)
    cache.chmod(0o775)
    assert not build.cache_usable(cache)


def test_a_build_for_another_machine_is_not_reused(cache):
    (cache.parent / "build-info.json").write_text(json.dumps({"machine": "not-" + platform.machine()}))
    assert not build.cache_usable(cache)


def test_what_is_not_there_or_not_executable_is_not_a_build(cache):
    cache.chmod(0o644)
    assert not build.cache_usable(cache)
    os.unlink(cache)
    assert not build.cache_usable(cache)


def test_only_the_pinned_llama_cpp_python_sdist_is_built(tmp_path, monkeypatch):
    sdist = tmp_path / f"llama_cpp_python-{build.LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    sdist.write_bytes(b"not the real source")
    with pytest.raises(RuntimeError, match="refusing to build"):
        build.check_sdist(sdist)
    import hashlib
    monkeypatch.setenv("MODELRUNNER_LLAMA_CPP_SDIST_SHA256",
                       hashlib.sha256(b"not the real source").hexdigest())
    build.check_sdist(sdist)  # another version's sdist, pinned by its own hash


def test_a_native_build_for_another_cpu_is_not_reused(cache):
    info = {"machine": platform.machine(), "cpu": "0" * 16}
    (cache.parent / "build-info.json").write_text(json.dumps(info))
    assert not build.cache_usable(cache)
    info["cpu"] = build.cpu_signature()
    (cache.parent / "build-info.json").write_text(json.dumps(info))
    assert build.cache_usable(cache)
