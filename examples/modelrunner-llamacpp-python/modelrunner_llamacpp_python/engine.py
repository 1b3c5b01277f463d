"""The engine: data the core applies, and the runner command (serve.py) for a GGUF bundle."""

import importlib.metadata
import importlib.util
import json
import sys

from modelrunner import Engine, EngineError, RunnerCommand


class LlamaCppPythonEngine(Engine):
    name = "llama-cpp-python"
    formats = ("gguf",)
    modes = ("completion", "embedding")
    install_hint = "pip install modelrunner-llamacpp-python"
    # `_configure` flags: llama_cpp.server's ModelSettings fields (they validate the values)
    runtime_flags = frozenset({"--n_gpu_layers", "--n_threads", "--n_batch", "--seed"})

    def installed(self):
        if importlib.util.find_spec("llama_cpp") is None:
            return False, self.install_hint
        return True, "llama-cpp-python " + importlib.metadata.version("llama_cpp_python")

    def command(self, bundle, config, address):
        if not bundle.gguf_files:
            raise EngineError(f"model {bundle.model_id} has no GGUF file")
        settings = {"model": str(bundle.gguf_files[0]), "model_alias": bundle.model_id,
                    "embedding": config.mode == "embedding"}
        if config.context_size:
            settings["n_ctx"] = int(config.context_size)
        flags = [part for flag in config.runtime_flags for part in flag.split("=", 1)]
        for name, value in zip(flags[::2], flags[1::2]):
            settings[name[2:]] = value
        argv = [sys.executable, "-m", "modelrunner_llamacpp_python.serve", address,
                json.dumps(settings)]
        return RunnerCommand(argv=argv, health_path="/v1/models")

    def estimate_memory(self, bundle, config):
        """The weights plus a rough allowance for the KV cache and compute buffers."""
        return sum(p.stat().st_size for p in bundle.gguf_files) + 256 * 2**20
