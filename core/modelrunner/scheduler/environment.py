"""The environment a runner process starts with: an allow-list, never the server's secrets.

A runner is a third-party program (llama-server, vLLM, a diffusers script) that loads files the
user pulled from anywhere; it needs no registry password, Hugging Face token or API key, so none
reaches it. What passes: the basics (PATH, HOME, locale, temp and XDG folders, library paths),
the knobs of the accelerators and their libraries (CUDA_*, HIP_*, ROCR_*, OMP_*, GGML_*,
TRANSFORMERS_*, HF_HOME, HF_HUB_OFFLINE...), and the prefixes the installed engines declare
(``Engine.env_prefixes``: llama.cpp's LLAMA_, vLLM's VLLM_...). A name that looks like a secret is
dropped even when a prefix allows it. An engine adds what it needs through ``RunnerCommand.env``,
which is passed as given: the engine chose it.
"""

import functools
import re

ALLOWED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
    "TEMP", "TMP", "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
    "VIRTUAL_ENV", "LD_LIBRARY_PATH", "LD_PRELOAD", "LIBRARY_PATH", "CPATH", "CC", "CXX",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS", "KMP_AFFINITY", "HF_HOME", "HF_HUB_OFFLINE", "HF_HUB_CACHE",
    "HF_HUB_DISABLE_TELEMETRY", "HF_DATASETS_OFFLINE", "TORCH_HOME", "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR", "PYTORCH_CUDA_ALLOC_CONF", "TOKENIZERS_PARALLELISM",
})
ALLOWED_PREFIXES = ("LC_", "XDG_", "CUDA_", "HIP_", "ROCR_", "ROCM_", "HSA_", "OMP_", "GGML_",
                    "TRANSFORMERS_", "NCCL_", "ONEAPI_", "SYCL_", "ZE_", "VK_", "MESA_", "TORCH_")
SECRET = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|(^|_)KEY($|_)|API_?KEY|AUTH", re.I)
DENIED_PREFIXES = ("AWS_", "MODELRUNNER_REGISTRY_", "MODEL_RUNNER_API_KEY")


@functools.cache
def engine_prefixes():
    """The environment prefixes of every installed engine (asked once per process: a remote
    placement's node process asks its own installed plugins)."""
    from ..plugins import get_plugin_manager
    from ..settings import load_settings

    found = []
    get_plugin_manager().hook.register_engines(
        register=lambda engine: found.extend(getattr(engine, "env_prefixes", ()) or ()),
        settings=load_settings())
    return tuple(dict.fromkeys(str(p) for p in found if p))


def allowed(name, prefixes=None):
    """Whether the server's variable ``name`` may reach a runner; ``prefixes``: the engines'
    (default: every installed engine's, :func:`engine_prefixes`)."""
    if SECRET.search(name) or name.startswith(DENIED_PREFIXES):
        return False
    if prefixes is None:
        prefixes = engine_prefixes()
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES + tuple(prefixes))


def runner_environment(environ, extra=None, prefixes=None):
    """The runner's environment: the allowed part of ``environ``, then the engine's ``extra``.
    ``prefixes``: the runner's engine's ``env_prefixes`` (default: every installed engine's)."""
    if prefixes is None:
        prefixes = engine_prefixes()
    env = {name: value for name, value in environ.items() if allowed(name, prefixes)}
    env.update(extra or {})
    return env
