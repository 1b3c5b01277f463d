"""The whisper engine: speech to text by whisper.cpp's own ``whisper-server``.

A model of format ``whisper`` is one whisper.cpp ggml file (``model package --format whisper
--file ggml-tiny.en.bin``). Each loaded model is one ``whisper-server`` process on the Unix
socket the scheduler gives it, in the mode ``transcription``; its argv is built by
:mod:`modelrunner_whisper.args`, its binary found or built by :mod:`modelrunner_whisper.build`.
The routes (routes.py) send it OpenAI's transcription requests as whisper-server's form.
"""

import subprocess
import threading
from pathlib import Path

from modelrunner import Engine, EngineError, RunnerCommand, units

from . import ggml_file
from .args import RUNTIME_FLAGS, build_argv
from .build import find_whisper_server, read_build_info

BUILD_HINT = "run: modelrunner-whisper-build"
MODE = "transcription"
# whisper.cpp's own figures (README, "Memory usage"): tiny 273 MB for 75 MB of weights, base
# 388/142, small 852/466, medium 2.1 GB/1.5 GB, large 3.9/2.9: the weights, a quarter of them
# again for the KV caches and compute buffers that grow with the model, and about 200 MiB fixed.
FIXED_BYTES = 200 << 20
PER_WEIGHT_BYTE = 1.3


def model_file(bundle):
    """The bundle's whisper ggml file: the one file of the model whose header says so."""
    files = sorted(p for p in Path(bundle.model_dir).rglob("*") if p.is_file())
    found = [p for p in files if ggml_file.is_whisper_ggml(p)]
    if not found:
        raise EngineError(f"model {bundle.model_id} has no whisper ggml file (package one with "
                          f"`model package --format whisper --file ggml-MODEL.bin`)")
    return found[0]


_versions = {}
_lock = threading.Lock()


def _runs(path):
    """Whether the binary runs and is whisper-server (its --help names --inference-path)."""
    path = Path(path)
    key = (str(path), path.stat().st_mtime_ns)
    with _lock:
        if key not in _versions:
            try:
                help_text = subprocess.run([str(path), "--help"], capture_output=True, text=True,
                                           timeout=30)
                ok = "--inference-path" in (help_text.stdout + help_text.stderr)
            except (OSError, subprocess.SubprocessError):
                ok = False
            _versions[key] = ok
        return _versions[key]


class WhisperEngine(Engine):
    name = "whisper.cpp"
    formats = ("whisper",)
    modes = (MODE,)
    install_hint = BUILD_HINT
    runtime_flags = RUNTIME_FLAGS
    defaults = {
        "whisper_server_path": None,  # the binary; default: the package's own, then the cache
        "whisper_threads": 0,         # --threads; 0 = whisper-server's default (up to 4)
        "whisper_gpu": True,          # false adds --no-gpu to a GPU build
        "whisper_max_upload": 25 << 20,  # bytes of audio a request may upload (OpenAI's 25 MB)
        "whisper_max_seconds": 7200,     # seconds of audio a request may send (audio.py)
    }

    def binary(self):
        return find_whisper_server(self.settings)

    def installed(self):
        path = self.binary()
        if path is None:
            return False, BUILD_HINT
        if not _runs(path):
            return False, f"whisper-server at {path} does not run; {BUILD_HINT}"
        info = read_build_info(path)
        source = f" (whisper.cpp from pywhispercpp {info['pywhispercpp']})" if info else ""
        return True, f"whisper-server at {path}{source}"

    def build_info(self):
        path = self.binary()
        if path is None:
            return {}
        info = read_build_info(path)
        described = {"version": f"whisper-server (pywhispercpp {info.get('pywhispercpp', '?')})",
                     "gpu": info.get("gpu", "none"), "path": str(path)}
        if info.get("cmake_args"):
            described["cmake_args"] = " ".join(info["cmake_args"])
        return described

    def command(self, bundle, config, address):
        binary = self.binary()
        if binary is None:
            raise EngineError(f"whisper-server is not installed: {BUILD_HINT}", status=412)
        argv = build_argv(binary, model_file(bundle), address, config.runtime_flags,
                          threads=self.setting("whisper_threads"),
                          gpu=bool(self.setting("whisper_gpu")))
        return RunnerCommand(argv=argv, health_path="/health")

    def estimate_memory(self, bundle, config):
        """The weights plus what grows with them, plus a fixed part (see FIXED_BYTES)."""
        try:
            size = model_file(bundle).stat().st_size
        except (EngineError, OSError):
            return 0
        return int(size * PER_WEIGHT_BYTE) + FIXED_BYTES

    def choose_context(self, bundle, config, budget):
        return None, "whisper reads audio in 30 s windows; the context is the model's"

    def model_details(self, bundle, config):
        """What `model inspect` and GET /models/{ref} show: size class, parameters, languages."""
        try:
            info = ggml_file.read(model_file(bundle))
        except (EngineError, OSError, ValueError):
            return {}
        languages = ggml_file.languages(info)
        return {"whisper": f"{info['size_class']}{'' if info['multilingual'] else '.en'}, "
                           f"{units.format_parameters(info['parameters'])} parameters",
                "languages": ("English only" if languages == ["en"]
                              else f"{len(languages)} languages (translation to English too)")}

    runner_details = model_details
